import { randomUUID } from "node:crypto";
import { inspect } from "node:util";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { logger } from "../../functions/http/logger.ts";
import { resetRateLimiter } from "../../functions/http/rate-limit.ts";
import { closeRedis } from "../../layers/chat/cache/redis-client.ts";
import { resetChatRuntime } from "../../layers/chat/chat-runtime.ts";
import { resetConfig } from "../../layers/chat/config.ts";
import { closePool } from "../../layers/chat/db/pool.ts";
import { call, type HttpLambda, httpEvent } from "../helpers/lambda-events.ts";
import { type PrivateRedis, startPrivateRedis } from "../helpers/private-redis.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * Everything the functions print during a whole session (and its errors) is captured: process.stdout /
 * process.stderr writes (Powertools' own Console instance writes there) and every console method. No
 * session token and no message content may appear in any of it, at the most verbose log level, with Powertools'
 * POWERTOOLS_LOGGER_LOG_EVENT on.
 */
vi.hoisted(() => {
  process.env.POWERTOOLS_LOG_LEVEL = "DEBUG";
  delete process.env.POWERTOOLS_DEV;
  // Powertools' switch to log every event, as an operator might turn it on: the functions must not obey it.
  process.env.POWERTOOLS_LOGGER_LOG_EVENT = "true";
});

const captured: string[] = [];
const text = (chunk: unknown) =>
  typeof chunk === "string"
    ? chunk
    : Buffer.isBuffer(chunk)
      ? chunk.toString("utf8")
      : inspect(chunk, { depth: 20 });

let db: TestDatabase;
let redis: PrivateRedis;

/** A message containing FAULT fails its insert with a database error that quotes the whole message. */
const FAULT = "fail-this-insert";
const FAULT_SQLSTATE = "P0001";
const FAULT_TRIGGER = `
CREATE FUNCTION test_fail_marked_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.content LIKE '%${FAULT}%' THEN
    RAISE EXCEPTION 'test fault on %', NEW.content USING DETAIL = 'content: ' || NEW.content;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER test_fail_marked_insert BEFORE INSERT ON messages
  FOR EACH ROW EXECUTE FUNCTION test_fail_marked_insert();`;

beforeAll(async () => {
  db = await createTestDatabase(5);
  await db.pool.query(FAULT_TRIGGER);
  redis = await startPrivateRedis();
  Object.assign(process.env, {
    DATABASE_URL: db.url,
    REDIS_URL: redis.url,
    RATE_LIMIT_PER_TOKEN: "40",
    RATE_LIMIT_PER_IP: "0",
  });
  resetConfig();
  resetRateLimiter();
  resetChatRuntime();
  const capture = (chunk: unknown) => {
    captured.push(text(chunk));
    return true;
  };
  vi.spyOn(process.stdout, "write").mockImplementation(capture as typeof process.stdout.write);
  vi.spyOn(process.stderr, "write").mockImplementation(capture as typeof process.stderr.write);
  for (const m of ["log", "info", "warn", "error", "debug", "trace", "dir"] as const) {
    vi.spyOn(console, m).mockImplementation((...args: unknown[]) => {
      captured.push(args.map(text).join(" "));
    });
  }
});

afterAll(async () => {
  vi.restoreAllMocks();
  await closeRedis();
  await closePool();
  redis.resume();
  await redis.stop();
  await db.drop();
});

async function send(name: string, event: APIGatewayProxyEventV2) {
  const { handler } = (await import(`../../functions/${name}.ts`)) as { handler: HttpLambda };
  return call(handler, name, event);
}

describe("log privacy", () => {
  it("no token and no message content in anything logged during a whole session and its errors", async () => {
    const marker = () => `secret-${randomUUID()}`;
    const contents: string[] = [];
    const tokens: string[] = [];
    const other: string[] = []; // user ids and metadata: not logged either
    const post = (sid: string, token: string, content: string, extra: Record<string, string> = {}) => {
      contents.push(content);
      return send(
        "messages-post",
        httpEvent("POST", "/messages/post", {
          body: { session_id: sid, content },
          headers: { authorization: `Bearer ${token}`, ...extra },
        }),
      );
    };

    // positive control: the capture sees the logger
    const probe = marker();
    logger.info("capture probe", { probe });
    expect(captured.join("\n")).toContain(probe);

    const userId = marker();
    const meta = marker();
    other.push(userId, meta);
    const created = await send(
      "sessions-create",
      httpEvent("POST", "/sessions/create", {
        body: { user_id: userId, metadata: { note: meta } },
        headers: { "idempotency-key": randomUUID() },
      }),
    );
    expect(created.statusCode).toBe(201);
    const sid = created.json.session.session_id as string;
    const token = created.json.token as string;
    tokens.push(token);
    const auth = { authorization: `Bearer ${token}` };

    const first = await post(sid, token, `hello, my password is ${marker()}`);
    expect(first.statusCode).toBe(201);
    contents.push(first.json.reply.content);
    const second = await post(sid, token, `what was my first message? ${marker()}`, {
      "idempotency-key": randomUUID(),
    });
    expect(second.statusCode).toBe(201);
    contents.push(second.json.reply.content);

    const editContent = `edited: ${marker()}`;
    contents.push(editContent);
    const edited = await send(
      "messages-edit",
      httpEvent("PUT", "/messages/edit", {
        body: {
          session_id: sid,
          message_id: second.json.message.message_id,
          content: editContent,
          regenerate: true,
        },
        headers: { ...auth, "if-match": '"1"' },
      }),
    );
    expect(edited.statusCode, JSON.stringify(edited.json)).toBe(200);
    if (edited.json.reply) contents.push(edited.json.reply.content);

    expect(
      (await send("session-messages", httpEvent("GET", `/sessions/${sid}/messages`, { headers: auth })))
        .statusCode,
    ).toBe(200);
    expect(
      (await send("session-get", httpEvent("GET", `/sessions/${sid}`, { headers: auth }))).statusCode,
    ).toBe(200);
    expect(
      (await send("session-suggestions", httpEvent("GET", `/sessions/${sid}/suggestions`, { headers: auth })))
        .statusCode,
    ).toBe(200);
    expect(
      (
        await send(
          "messages-delete",
          httpEvent("DELETE", "/messages/delete", {
            body: { session_id: sid, message_id: first.json.message.message_id },
            headers: auth,
          }),
        )
      ).statusCode,
    ).toBe(200);

    // errors, each carrying a token or content somewhere in the request
    const other2 = await send("sessions-create", httpEvent("POST", "/sessions/create", { body: {} }));
    tokens.push(other2.json.token);
    const errors = [
      // another session's token: 404
      await post(sid, other2.json.token, `intruder ${marker()}`),
      // a wrong token: 401
      await post(
        sid,
        `${token.slice(0, -2)}${token.endsWith("xx") ? "yy" : "xx"}`,
        `wrong token ${marker()}`,
      ),
      // malformed JSON, unknown fields, a too-long content, NUL
      await send(
        "messages-post",
        httpEvent("POST", "/messages/post", {
          body: `{"session_id":"${sid}","content":"${marker()}"`,
          headers: { ...auth, "content-type": "application/json" },
        }),
      ),
      await send(
        "messages-post",
        httpEvent("POST", "/messages/post", {
          body: { session_id: sid, content: marker(), [marker()]: 1 },
          headers: auth,
        }),
      ),
      await post(sid, token, `${marker()} ${"x".repeat(9000)}`),
      await post(sid, token, `${marker()}\u0000`),
      // a stale version: 409 / 412
      await send(
        "messages-edit",
        httpEvent("PUT", "/messages/edit", {
          body: {
            session_id: sid,
            message_id: second.json.message.message_id,
            content: marker(),
            expected_version: 1,
          },
          headers: auth,
        }),
      ),
      // an idempotency key reused with another body: 422
      await post(sid, token, marker(), { "idempotency-key": "reused-key" }),
      await post(sid, token, marker(), { "idempotency-key": "reused-key" }),
      // a user_id Postgres cannot store: 400
      await send(
        "sessions-create",
        httpEvent("POST", "/sessions/create", { body: { user_id: `${marker()}\u0000` } }),
      ),
      // a 500 whose database error quotes the message (a test trigger): logged as an error, without the text
      await post(sid, token, `${FAULT} ${marker()}`),
    ];
    const statuses = errors.map((r) => r.statusCode);
    expect(statuses.slice(0, 7)).toEqual([404, 401, 400, 400, 400, 400, 409]);
    expect(statuses.slice(8)).toEqual([422, 400, 500]);

    // Redis goes away mid-session: the limiter and the cache log their fallback
    redis.pause();
    try {
      expect(
        (await send("session-messages", httpEvent("GET", `/sessions/${sid}/messages`, { headers: auth })))
          .statusCode,
      ).toBe(200);
      await post(sid, token, `while redis is stalled ${marker()}`);
    } finally {
      redis.resume();
    }
    // over the token's limit: 429, logged
    let limited = 0;
    for (let i = 0; i < 45 && !limited; i++) {
      const r = await send("session-get", httpEvent("GET", `/sessions/${sid}`, { headers: auth }));
      if (r.statusCode === 429) limited++;
    }
    expect(limited).toBe(1);

    // erase, then use the erased session's token
    expect(
      (
        await send(
          "session-erase",
          httpEvent("DELETE", `/sessions/${other2.json.session.session_id}`, {
            headers: { authorization: `Bearer ${other2.json.token}` },
          }),
        )
      ).statusCode,
    ).toBe(204);
    await send(
      "session-get",
      httpEvent("GET", `/sessions/${other2.json.session.session_id}`, {
        headers: { authorization: `Bearer ${other2.json.token}` },
      }),
    );

    const all = captured.join("\n");
    // the capture is real: access logs of every function (a 429 among them), the fallback line
    for (const fn of [
      "sessions-create",
      "messages-post",
      "messages-edit",
      "messages-delete",
      "session-messages",
      "session-erase",
    ]) {
      expect(all).toContain(`"function":"${fn}"`);
    }
    expect(all).toContain('"status":429');
    expect(all).toContain('"rate_limited":[');
    // the 5xx path logged its error line, and the database's message (which quotes the content) stayed out
    expect(all).toContain('"message":"request failed"');
    expect(all).toContain(`"code":"${FAULT_SQLSTATE}"`);
    expect(all).toContain("rate limiter: Redis unavailable");

    for (const t of tokens) {
      expect(all, "a token was logged").not.toContain(t);
      expect(all, "part of a token was logged").not.toContain(t.slice(0, 16));
      expect(all, "part of a token was logged").not.toContain(t.slice(-16));
    }
    for (const c of contents) {
      expect(all, `message content was logged: ${c.slice(0, 40)}`).not.toContain(c.slice(0, 60));
    }
    // every marker put into any request (content, ids, keys, metadata) stays out of the logs
    const markers = [...contents, ...other].flatMap((s) => s.match(/secret-[0-9a-f-]{36}/g) ?? []);
    expect(markers.length).toBeGreaterThan(5);
    for (const m of all.match(/secret-[0-9a-f-]{36}/g) ?? []) expect(m).toBe(probe);
  });
});
