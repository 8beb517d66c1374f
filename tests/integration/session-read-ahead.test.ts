import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resetRateLimiter } from "../../functions/http/rate-limit.ts";
import { closeRedis, getRedis } from "../../layers/chat/cache/redis-client.ts";
import { HISTORY_CACHE_MAX } from "../../layers/chat/chat/chat-service.ts";
import { pageOf } from "../../layers/chat/chat/history-rules.ts";
import { resetChatRuntime } from "../../layers/chat/chat-runtime.ts";
import { resetConfig } from "../../layers/chat/config.ts";
import { loadSnapshot } from "../../layers/chat/db/chat-store.ts";
import { closePool } from "../../layers/chat/db/pool.ts";
import { SHARED_REDIS_URL } from "../helpers/chat-fixture.ts";
import { call, type HttpLambda, httpEvent } from "../helpers/lambda-events.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * Each HTTP function reads ahead, in the rate limiter's round trip, only what it uses of a long session's cache
 * entries (SessionRead in its httpHandler spec): watched with MONITOR on the session's history key, through the
 * real handlers, on a history far longer than the 32 KB read of one end.
 */
let db: TestDatabase;
let base: Redis;
let monitor: Redis;
const seen: string[][] = [];
beforeAll(async () => {
  db = await createTestDatabase(5);
  Object.assign(process.env, {
    DATABASE_URL: db.url,
    REDIS_URL: SHARED_REDIS_URL,
    REDIS_COMMAND_TIMEOUT_MS: "1000",
    RATE_LIMIT_PER_TOKEN: "100000",
    RATE_LIMIT_PER_IP: "100000",
    RATE_LIMIT_WINDOW_SECONDS: "60",
  });
  resetConfig();
  resetRateLimiter();
  resetChatRuntime();
  base = new Redis(SHARED_REDIS_URL);
  base.on("error", () => {});
  const m = await base.monitor(); // a connection of its own, in MONITOR mode
  m.on("error", () => {});
  m.on("monitor", (_time: string, args: string[]) => seen.push(args.map((a) => String(a).toLowerCase())));
  monitor = m;
});
afterAll(async () => {
  monitor?.disconnect();
  base?.disconnect();
  await closeRedis();
  await closePool();
  await db.drop();
});

async function send(name: string, event: ReturnType<typeof httpEvent>) {
  const { handler } = (await import(`../../functions/${name}.ts`)) as { handler: HttpLambda };
  return call(handler, name, event);
}

/** The commands on `key` that `request` sent (MONITOR reports asynchronously: two ECHOs mark the start and end). */
async function commandsOn(key: string, request: () => Promise<unknown>): Promise<string[][]> {
  const tag = `read-ahead-marker-${Math.random()}`;
  const at = (marker: string) => seen.findIndex((args) => args.includes(marker));
  seen.length = 0;
  await getRedis()?.echo(`${tag}-start`);
  await request();
  await getRedis()?.echo(`${tag}-end`);
  await expect.poll(() => at(`${tag}-end`)).toBeGreaterThan(-1);
  return seen
    .slice(at(`${tag}-start`) + 1, at(`${tag}-end`))
    .filter((args) => args.includes(key.toLowerCase()));
}

describe("read ahead per function, on a long history", () => {
  it("posts and polls read the end, a first page the start, session reads no history, edits all", async () => {
    const created = await send("sessions-create", httpEvent("POST", "/sessions/create", { body: {} }));
    const id = created.json.session.session_id as string;
    const headers = { authorization: `Bearer ${created.json.token}` };
    const post = (content: string) =>
      send(
        "messages-post",
        httpEvent("POST", "/messages/post", { body: { session_id: id, content }, headers }),
      );
    for (let i = 0; i < 40; i++)
      expect((await post(`${i} ${"lorem ipsum ".repeat(125)}`)).statusCode).toBe(201);
    const h = `chat:{${id}}:h`;
    expect(await getRedis()!.strlen(h)).toBeGreaterThan(2 * 32 * 1024);
    const kinds = (cmds: string[][]) => cmds.map((c) => c.slice(0, 1).concat(c.slice(2)).join(" "));

    // MONITOR also shows the commands a script runs: the append's own reads and writes stay at the two ends
    const posting = await commandsOn(h, () => post("one more"));
    expect(kinds(posting).slice(0, 2)).toEqual(["getrange 0 18", "getrange -32768 -1"]);
    expect(posting.map((c) => c[0])).toContain("setrange");
    expect(posting.map((c) => c[0]).filter((c) => ["get", "mget", "set"].includes(c as string))).toEqual([]);

    const truth = (await loadSnapshot(db.pool, id, HISTORY_CACHE_MAX))!.messages;
    const lastSeq = truth.at(-1)!.seq;
    let page: Awaited<ReturnType<typeof send>> | undefined;
    const polling = await commandsOn(h, async () => {
      page = await send(
        "session-messages",
        httpEvent("GET", `/sessions/${id}/messages?after_seq=${lastSeq - 2}`, { headers }),
      );
    });
    expect(kinds(polling)).toEqual(["getrange 0 18", "getrange -32768 -1"]);
    expect(page?.headers["x-cache"]).toBe("hit");
    expect(page?.json).toEqual(pageOf(truth, lastSeq - 2, 50));

    const first = await commandsOn(h, async () => {
      page = await send(
        "session-messages",
        httpEvent("GET", `/sessions/${id}/messages?limit=5`, { headers }),
      );
    });
    expect(kinds(first)).toEqual(["getrange 0 32767"]);
    expect(page?.json).toEqual(pageOf(truth, 0, 5));

    for (const name of ["session-get", "session-suggestions"] as const) {
      const url = name === "session-get" ? `/sessions/${id}` : `/sessions/${id}/suggestions`;
      const reads = await commandsOn(h, async () => {
        expect((await send(name, httpEvent("GET", url, { headers }))).statusCode).toBe(200);
      });
      expect([name, reads]).toEqual([name, []]);
    }

    const editing = await commandsOn(h, async () => {
      const edit = await send(
        "messages-edit",
        httpEvent("PUT", "/messages/edit", {
          body: { session_id: id, message_id: truth.at(-2)!.message_id, content: "edited" },
          headers,
        }),
      );
      expect(edit.statusCode).toBe(200);
    });
    // an edit reads ahead the start only; the whole entry once the request is authorized
    expect(kinds(editing)[0]).toBe("getrange 0 32767");
    expect(kinds(editing)[1]).toMatch(/^mget /);
    const now = (await loadSnapshot(db.pool, id, HISTORY_CACHE_MAX))!.messages;
    expect(now.at(-2)).toMatchObject({ message_id: truth.at(-2)!.message_id, content: "edited" });

    // a refused edit or delete (a wrong token) moves no more of the history than that start
    const wrong = { authorization: `Bearer ${"x".repeat(43)}` };
    for (const [name, method, path] of [
      ["messages-edit", "PUT", "/messages/edit"],
      ["messages-delete", "DELETE", "/messages/delete"],
    ] as const) {
      const refused = await commandsOn(h, async () => {
        const res = await send(
          name,
          httpEvent(method, path, {
            body: {
              session_id: id,
              message_id: truth[1]!.message_id,
              ...(name === "messages-edit" ? { content: "x" } : {}),
            },
            headers: wrong,
          }),
        );
        expect(res.statusCode).toBe(401);
      });
      expect([name, kinds(refused)]).toEqual([name, ["getrange 0 32767"]]);
    }
    // nor does one whose session the read-ahead cannot find before parsing (ids as query parameters, or a key
    // spelled with an escape): read once the request names it, as much as the read-ahead would have
    const byQuery = httpEvent(
      "DELETE",
      `/messages/delete?session_id=${id}&message_id=${truth[1]!.message_id}`,
      { headers: wrong },
    );
    const escaped = httpEvent("PUT", "/messages/edit", {
      body: `{"session\\u005fid":"${id}","message_id":"${truth[1]!.message_id}","content":"x"}`,
      headers: { ...wrong, "content-type": "application/json" },
    });
    for (const [name, event] of [
      ["messages-delete", byQuery],
      ["messages-edit", escaped],
    ] as const) {
      const refused = await commandsOn(h, async () => {
        expect((await send(name, event)).statusCode).toBe(401);
      });
      expect([name, kinds(refused)]).toEqual([name, ["getrange 0 32767"]]);
    }

    // functions with no session read nothing ahead, whatever session a caller names in its body
    for (const [name, path] of [
      ["sessions-create", "/sessions/create"],
      ["route-not-found", "/no/such/route"],
    ] as const) {
      const reads = await commandsOn(h, async () => {
        const event = httpEvent("POST", path === "/sessions/create" ? path : "/sessions/create", {
          body: name === "sessions-create" ? { session_id: id } : `{"session_id":"${id}"}`,
        });
        if (name === "route-not-found") {
          event.rawPath = path;
          event.routeKey = "$default";
          event.requestContext.http.path = path;
        }
        await send(name, event);
      });
      expect([name, reads]).toEqual([name, []]);
    }
  });

  it("an edit or delete of a session whose history fits the start read ahead reads nothing more", async () => {
    const created = await send("sessions-create", httpEvent("POST", "/sessions/create", { body: {} }));
    const id = created.json.session.session_id as string;
    const headers = { authorization: `Bearer ${created.json.token}` };
    const posted = await send(
      "messages-post",
      httpEvent("POST", "/messages/post", { body: { session_id: id, content: "hello" }, headers }),
    );
    expect(posted.statusCode).toBe(201);
    const h = `chat:{${id}}:h`;
    const messageId = posted.json.message.message_id as string;
    const editing = await commandsOn(h, async () => {
      const res = await send(
        "messages-edit",
        httpEvent("PUT", "/messages/edit", {
          body: { session_id: id, message_id: messageId, content: "hi" },
          headers,
        }),
      );
      expect(res.statusCode).toBe(200);
    });
    expect(editing.map((c) => c[0]).filter((c) => c === "get" || c === "mget" || c === "getrange")).toEqual([
      "getrange",
    ]);
    const deleting = await commandsOn(h, async () => {
      const res = await send(
        "messages-delete",
        httpEvent("DELETE", "/messages/delete", { body: { session_id: id, message_id: messageId }, headers }),
      );
      expect(res.statusCode).toBe(200);
    });
    expect(deleting.map((c) => c[0]).filter((c) => c === "get" || c === "mget" || c === "getrange")).toEqual([
      "getrange",
    ]);
    const page = await send("session-messages", httpEvent("GET", `/sessions/${id}/messages`, { headers }));
    expect(page.json.messages.map((m: { message_id: string }) => m.message_id)).not.toContain(messageId);
  });
});
