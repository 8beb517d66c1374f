import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Message, Session } from "../../layers/chat/chat/types.ts";
import { WELCOME } from "../../layers/chat/responders/builtin-responder.ts";
import { RUNNER_REDIS_URL, type RunnerFixture, startRunnerFixture } from "../helpers/runner-fixture.ts";

/**
 * The whole HTTP contract of a conversation, over real HTTP against the local runner (real handlers,
 * Postgres, Redis): create, post, edit (plain, regenerate, If-Match), delete (body and query), paging,
 * the cache header, suggestions, erase, health and the OpenAPI document. Every response is also validated
 * against docs/openapi.json by the fixture.
 */
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

interface Created {
  session: Session;
  token: string;
  messages: Message[];
  suggestions: string[];
}
interface Turn {
  message: Message;
  reply: Message;
  suggestions: string[];
}
interface Page {
  messages: Message[];
  next_after_seq: number | null;
}

let fx: RunnerFixture;
let redis: Redis;

beforeAll(async () => {
  fx = await startRunnerFixture();
  redis = new Redis(RUNNER_REDIS_URL, { lazyConnect: true });
  await redis.connect();
});
afterAll(async () => {
  redis?.disconnect();
  await fx?.close();
});

function expectTime(value: unknown) {
  expect(value).toMatch(RFC3339_UTC);
  expect(Number.isNaN(Date.parse(value as string))).toBe(false);
}

async function readAll(sessionId: string, token: string): Promise<Message[]> {
  const res = await fx.call<Page>("GET", `/sessions/${sessionId}/messages?limit=200`, { token });
  expect(res.status).toBe(200);
  expect(res.body.next_after_seq).toBeNull();
  return res.body.messages;
}

describe("a whole conversation over HTTP", () => {
  let session: Session;
  let token: string;
  let welcome: Message;
  let first: Turn;
  let second: Turn;
  let lastSuggestions: string[];
  let location: string;

  it("POST /sessions/create answers 201 with the session, a token, the welcome message and suggestions", async () => {
    const before = Date.now();
    const res = await fx.call<Created>("POST", "/sessions/create", {
      json: { user_id: "user-42", metadata: { plan: "pro", tags: ["a", "b"] } },
    });
    expect(res.status).toBe(201);
    expect(res.contentType).toMatch(/^application\/json/);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("idempotent-replayed")).toBeNull();
    expect(Object.keys(res.body).sort()).toEqual(["messages", "session", "suggestions", "token"]);
    session = res.body.session;
    token = res.body.token;
    expect(session.session_id).toMatch(UUID_V4);
    // RFC 9110 §15.3.2: a 201 names what it created
    expect(res.headers.get("location")).toBe(`/sessions/${session.session_id}`);
    location = res.headers.get("location") as string;
    expect(session).toMatchObject({
      user_id: "user-42",
      metadata: { plan: "pro", tags: ["a", "b"] },
      last_seq: 1,
      message_count: 1,
    });
    expectTime(session.created_at);
    expect(session.updated_at).toBe(session.created_at);
    expect(Date.parse(session.created_at)).toBeGreaterThanOrEqual(before - 1000);
    expect(token).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect(res.body.messages).toHaveLength(1);
    welcome = res.body.messages[0] as Message;
    expect(welcome).toEqual({
      message_id: expect.stringMatching(UUID_V4),
      session_id: session.session_id,
      seq: 1,
      role: "assistant",
      content: WELCOME.content,
      version: 1,
      created_at: session.created_at,
      edited_at: null,
      reply_to: null,
    });
    expect(res.body.suggestions).toEqual(WELCOME.suggestions);
  });

  it("POST /sessions/create with no body at all makes an anonymous session", async () => {
    const res = await fx.call<Created>("POST", "/sessions/create");
    expect(res.status).toBe(201);
    expect(res.body.session).toMatchObject({ user_id: null, metadata: {}, last_seq: 1, message_count: 1 });
    expect(res.body.session.session_id).not.toBe(session.session_id);
    expect(res.body.token).not.toBe(token);
  });

  it("GET /sessions/{id}, at the Location the create answered, returns the session summary as created", async () => {
    const res = await fx.call<Session>("GET", new URL(location, fx.url).pathname, { token });
    expect(res.status).toBe(200);
    expect(res.body).toEqual(session);
  });

  it("takes the Bearer scheme in any letter case (RFC 9110 §11.1)", async () => {
    for (const scheme of ["bearer", "BEARER"]) {
      const res = await fx.call<Session>("GET", `/sessions/${session.session_id}`, {
        headers: { authorization: `${scheme} ${token}` },
      });
      expect([res.status, res.body.session_id], scheme).toEqual([200, session.session_id]);
    }
  });

  it("POST /messages/post answers 201 with the user message, the bot's reply (reply_to) and suggestions", async () => {
    const res = await fx.call<Turn>("POST", "/messages/post", {
      json: { session_id: session.session_id, content: "Hello!" },
      token,
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("idempotent-replayed")).toBeNull();
    first = res.body;
    expect(first.message).toEqual({
      message_id: expect.stringMatching(UUID_V4),
      session_id: session.session_id,
      seq: 2,
      role: "user",
      content: "Hello!",
      version: 1,
      created_at: expect.stringMatching(RFC3339_UTC),
      edited_at: null,
      reply_to: null,
    });
    expect(first.reply).toEqual({
      message_id: expect.stringMatching(UUID_V4),
      session_id: session.session_id,
      seq: 3,
      role: "assistant",
      content: "Hi there! How can I help you today?",
      version: 1,
      created_at: first.message.created_at,
      edited_at: null,
      reply_to: first.message.message_id,
    });
    expect(first.reply.message_id).not.toBe(first.message.message_id);
    expect(first.suggestions.length).toBeGreaterThan(0);
    expect(first.suggestions.every((s) => typeof s === "string" && s.length > 0)).toBe(true);
  });

  it("the bot sees the conversation so far (history reaches the responder)", async () => {
    const res = await fx.call<Turn>("POST", "/messages/post", {
      json: { session_id: session.session_id, content: "What was my first message?" },
      token,
    });
    expect(res.status).toBe(201);
    second = res.body;
    expect(second.message.seq).toBe(4);
    expect(second.reply.seq).toBe(5);
    expect(second.reply.content).toBe('Your first message was "Hello!".');
    lastSuggestions = second.suggestions;
  });

  it("GET /sessions/{id}/suggestions returns the suggestions of the last reply", async () => {
    const res = await fx.call<{ suggestions: string[] }>(
      "GET",
      `/sessions/${session.session_id}/suggestions`,
      {
        token,
      },
    );
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ suggestions: lastSuggestions });
  });

  it("GET /sessions/{id} counts the messages and advances last_seq and updated_at", async () => {
    const res = await fx.call<Session>("GET", `/sessions/${session.session_id}`, { token });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ session_id: session.session_id, last_seq: 5, message_count: 5 });
    expect(res.body.created_at).toBe(session.created_at);
    expect(Date.parse(res.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(session.updated_at));
    expect(res.body.updated_at).toBe(second.message.created_at);
  });

  it("GET /sessions/{id}/messages pages through the history with after_seq and next_after_seq", async () => {
    const seen: number[] = [];
    let cursor = 0;
    const cursors: (number | null)[] = [];
    for (let page = 0; page < 10; page++) {
      const res = await fx.call<Page>(
        "GET",
        `/sessions/${session.session_id}/messages?after_seq=${cursor}&limit=2`,
        { token },
      );
      expect(res.status).toBe(200);
      expect(res.body.messages.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.messages.map((m) => m.seq));
      cursors.push(res.body.next_after_seq);
      if (res.body.next_after_seq === null) break;
      expect(res.body.next_after_seq).toBe(res.body.messages.at(-1)?.seq);
      cursor = res.body.next_after_seq;
    }
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(cursors).toEqual([2, 4, null]);
  });

  it("GET /sessions/{id}/messages defaults to after_seq=0, limit=50 and returns whole messages in seq order", async () => {
    const res = await fx.call<Page>("GET", `/sessions/${session.session_id}/messages`, { token });
    expect(res.status).toBe(200);
    expect(res.body.next_after_seq).toBeNull();
    expect(res.body.messages).toEqual([welcome, first.message, first.reply, second.message, second.reply]);
  });

  it("GET /sessions/{id}/messages caps a page at limit (1) and at the default of 50", async () => {
    for (let i = 0; i < 23; i++) {
      const res = await fx.call<Turn>("POST", "/messages/post", {
        json: { session_id: session.session_id, content: `filler ${i}` },
        token,
      });
      expect(res.status).toBe(201);
    }
    // 5 + 46 = 51 messages
    const one = await fx.call<Page>("GET", `/sessions/${session.session_id}/messages?limit=1`, { token });
    expect(one.body.messages.map((m) => m.seq)).toEqual([1]);
    expect(one.body.next_after_seq).toBe(1);
    const padded = await fx.call<Page>(
      "GET",
      `/sessions/${session.session_id}/messages?limit=002&after_seq=01`,
      {
        token,
      },
    );
    expect(padded.body.messages.map((m) => m.seq)).toEqual([2, 3]);
    const byDefault = await fx.call<Page>("GET", `/sessions/${session.session_id}/messages`, { token });
    expect(byDefault.body.messages).toHaveLength(50);
    expect(byDefault.body.next_after_seq).toBe(50);
    const rest = await fx.call<Page>("GET", `/sessions/${session.session_id}/messages?after_seq=50`, {
      token,
    });
    expect(rest.body.messages.map((m) => m.seq)).toEqual([51]);
    expect(rest.body.next_after_seq).toBeNull();
    const max = await fx.call<Page>("GET", `/sessions/${session.session_id}/messages?limit=200`, { token });
    expect(max.body.messages).toHaveLength(51);
    expect(max.body.next_after_seq).toBeNull();
  });

  it("x-cache says miss when Redis holds nothing for the session, then hit after that read", async () => {
    await redis.del(`chat:{${session.session_id}}:s`, `chat:{${session.session_id}}:h`);
    const miss = await fx.call<Page>("GET", `/sessions/${session.session_id}/messages?limit=3`, { token });
    expect(miss.status).toBe(200);
    expect(miss.headers.get("x-cache")).toBe("miss");
    const hit = await fx.call<Page>("GET", `/sessions/${session.session_id}/messages?limit=3`, { token });
    expect(hit.status).toBe(200);
    expect(hit.headers.get("x-cache")).toBe("hit");
    expect(hit.body).toEqual(miss.body);
  });

  it("PUT /messages/edit without regenerate changes only the message: version+1, edited_at, an ETag", async () => {
    const res = await fx.call<{ message: Message; reply?: Message }>("PUT", "/messages/edit", {
      json: {
        session_id: session.session_id,
        message_id: first.message.message_id,
        content: "Hello there!",
        expected_version: 1,
      },
      token,
    });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body)).toEqual(["message"]);
    expect(res.body.message).toEqual({
      ...first.message,
      content: "Hello there!",
      version: 2,
      edited_at: expect.stringMatching(RFC3339_UTC),
    });
    expect(Date.parse(res.body.message.edited_at as string)).toBeGreaterThanOrEqual(
      Date.parse(first.message.created_at),
    );
    expect(res.headers.get("etag")).toBe('"2"');
    const all = await readAll(session.session_id, token);
    expect(all.find((m) => m.message_id === first.message.message_id)).toEqual(res.body.message);
    expect(all.find((m) => m.message_id === first.reply.message_id)).toEqual(first.reply);
  });

  it("PUT /messages/edit with If-Match of the current version applies the edit", async () => {
    const res = await fx.call<{ message: Message }>("PUT", "/messages/edit", {
      json: { session_id: session.session_id, message_id: first.message.message_id, content: "Hey, hello!" },
      headers: { "if-match": '"2"' },
      token,
    });
    expect(res.status).toBe(200);
    expect(res.body.message).toMatchObject({ content: "Hey, hello!", version: 3, seq: 2 });
    expect(res.headers.get("etag")).toBe('"3"');
  });

  let latest: Turn;
  it("PUT /messages/edit with regenerate replaces the bot's reply in place (same id and seq, version+1)", async () => {
    const posted = await fx.call<Turn>("POST", "/messages/post", {
      json: { session_id: session.session_id, content: "thanks" },
      token,
    });
    expect(posted.status).toBe(201);
    latest = posted.body;
    expect(latest.reply.content).toBe("You're welcome! Anything else?");
    const before = await fx.call<Session>("GET", `/sessions/${session.session_id}`, { token });

    const res = await fx.call<Turn>("PUT", "/messages/edit", {
      json: {
        session_id: session.session_id,
        message_id: latest.message.message_id,
        content: "goodbye",
        regenerate: true,
      },
      token,
    });
    expect(res.status).toBe(200);
    expect(res.body.message).toMatchObject({
      message_id: latest.message.message_id,
      content: "goodbye",
      version: 2,
    });
    expect(res.body.reply).toEqual({
      ...latest.reply,
      content: "Goodbye! Your conversation is saved if you want to come back.",
      version: 2,
      edited_at: res.body.message.edited_at,
    });
    const after = await fx.call<Session>("GET", `/sessions/${session.session_id}`, { token });
    expect(after.body.last_seq).toBe(before.body.last_seq);
    expect(after.body.message_count).toBe(before.body.message_count);
    const suggestions = await fx.call<{ suggestions: string[] }>(
      "GET",
      `/sessions/${session.session_id}/suggestions`,
      { token },
    );
    expect(suggestions.body.suggestions).toEqual([
      "Hello again!",
      "Summarize our conversation",
      "What can you do?",
    ]);
    // the new reply's suggestions come with it, as a post's do: a client does not keep offering the old reply's
    expect(res.body.suggestions).toEqual(suggestions.body.suggestions);
    const all = await readAll(session.session_id, token);
    expect(all.find((m) => m.message_id === latest.reply.message_id)).toEqual(res.body.reply);

    // a reply deleted before the regenerate is answered anew, with its suggestions too
    const deleted = await fx.call("DELETE", "/messages/delete", {
      json: { session_id: session.session_id, message_id: latest.reply.message_id },
      token,
    });
    expect(deleted.status).toBe(200);
    const again = await fx.call<Turn>("PUT", "/messages/edit", {
      json: {
        session_id: session.session_id,
        message_id: latest.message.message_id,
        content: "thanks",
        regenerate: true,
      },
      token,
    });
    expect(again.status).toBe(200);
    expect(again.body.reply.seq).toBe(after.body.last_seq + 1);
    expect(again.body.suggestions).toEqual(["What can you do?", "Summarize our conversation", "Goodbye"]);
    const now = await fx.call<{ suggestions: string[] }>(
      "GET",
      `/sessions/${session.session_id}/suggestions`,
      {
        token,
      },
    );
    expect(now.body.suggestions).toEqual(again.body.suggestions);
  });

  it("DELETE /messages/delete with a JSON body tombstones the message: gone from history, count-1", async () => {
    const before = await fx.call<Session>("GET", `/sessions/${session.session_id}`, { token });
    const res = await fx.call("DELETE", "/messages/delete", {
      json: { session_id: session.session_id, message_id: second.message.message_id },
      token,
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ message_id: second.message.message_id, deleted: true });
    const after = await fx.call<Session>("GET", `/sessions/${session.session_id}`, { token });
    expect(after.body.message_count).toBe(before.body.message_count - 1);
    expect(after.body.last_seq).toBe(before.body.last_seq);
    const all = await readAll(session.session_id, token);
    expect(all.map((m) => m.message_id)).not.toContain(second.message.message_id);
    expect(all.map((m) => m.seq)).not.toContain(second.message.seq);
    const row = await fx.db.pool.query("SELECT content, deleted_at FROM messages WHERE message_id = $1", [
      second.message.message_id,
    ]);
    expect(row.rows[0]).toMatchObject({ content: "" });
    expect(row.rows[0].deleted_at).not.toBeNull();
  });

  it("DELETE /messages/delete with query parameters (no body) deletes too", async () => {
    const res = await fx.call(
      "DELETE",
      `/messages/delete?session_id=${session.session_id}&message_id=${second.reply.message_id}`,
      { token },
    );
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ message_id: second.reply.message_id, deleted: true });
    const all = await readAll(session.session_id, token);
    expect(all.map((m) => m.message_id)).not.toContain(second.reply.message_id);
  });

  it("GET /health answers 200 with each backend's status and latency", async () => {
    const res = await fx.call<{
      status: string;
      version: string;
      checks: Record<string, { status: string; latency_ms: number | null }>;
    }>("GET", "/health");
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.body).toEqual({
      status: "ok",
      version: "0.1.0",
      checks: {
        postgres: { status: "ok", latency_ms: expect.any(Number) },
        redis: { status: "ok", latency_ms: expect.any(Number) },
        kafka: { status: "disabled", latency_ms: null },
      },
    });
    expect(res.body.checks.postgres?.latency_ms).toBeGreaterThanOrEqual(0);
  });

  it("GET /openapi.json serves the committed OpenAPI 3.1 document", async () => {
    const res = await fx.call("GET", "/openapi.json");
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("public, max-age=300");
    const committed = JSON.parse(readFileSync(new URL("../../docs/openapi.json", import.meta.url), "utf8"));
    expect(res.body).toEqual(committed);
    expect((res.body as { openapi: string }).openapi).toBe("3.1.0");
    // its server is the origin it was fetched from, wherever that is (not a fixed localhost)
    const docUrl = new URL("/openapi.json", fx.url);
    const servers = (res.body as { servers: { url: string }[] }).servers;
    expect(servers.map((sv) => new URL(sv.url, docUrl).origin)).toEqual([docUrl.origin]);
    expect(new URL(servers[0]!.url, "https://api.example.com/openapi.json").href).toBe(
      "https://api.example.com/",
    );
  });

  it("DELETE /sessions/{id} erases the session: 204 with no body, and every row of it is gone", async () => {
    const res = await fx.call("DELETE", `/sessions/${session.session_id}`, { token });
    expect(res.status).toBe(204);
    expect(res.text).toBe("");
    const rows = await fx.db.pool.query(
      `SELECT (SELECT count(*) FROM sessions WHERE session_id = $1)::int AS sessions,
              (SELECT count(*) FROM messages WHERE session_id = $1)::int AS messages,
              (SELECT count(*) FROM idempotency_records WHERE scope = 'messages-post:' || $1)::int AS idem,
              (SELECT array_agg(event_type) FROM outbox WHERE session_id = $1) AS events`,
      [session.session_id],
    );
    expect(rows.rows[0]).toEqual({ sessions: 0, messages: 0, idem: 0, events: ["chat.session.erased"] });
  });

  it("after erasure the old token is 401 everywhere, and another session's token gets 404", async () => {
    const paths: [string, string, unknown?][] = [
      ["GET", `/sessions/${session.session_id}`],
      ["GET", `/sessions/${session.session_id}/messages`],
      ["GET", `/sessions/${session.session_id}/suggestions`],
      ["DELETE", `/sessions/${session.session_id}`],
      ["POST", "/messages/post", { session_id: session.session_id, content: "still there?" }],
    ];
    for (const [method, path, json] of paths) {
      const res = await fx.call<{ code: string }>(method, path, { token, json });
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.body.code).toBe("unauthorized");
    }
    const other = await fx.call<Created>("POST", "/sessions/create");
    for (const [method, path, json] of paths) {
      const res = await fx.call<{ code: string }>(method, path, { token: other.body.token, json });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body.code).toBe("session_not_found");
    }
  });
});

describe("DELETE /messages/delete under If-Match", () => {
  it("deletes only a message at a version If-Match names: else 412 and nothing changes; a wrong token is 401 first", async () => {
    const created = await fx.call<Created>("POST", "/sessions/create");
    const { session: s, token: t } = created.body;
    const post = (content: string) =>
      fx.call<Turn>("POST", "/messages/post", { json: { session_id: s.session_id, content }, token: t });
    const turn = (await post("delete me only if unchanged")).body;
    const del = (messageId: string, ifMatch: string, token = t) =>
      fx.call<{ code: string }>("DELETE", "/messages/delete", {
        json: { session_id: s.session_id, message_id: messageId },
        headers: { "if-match": ifMatch },
        token,
      });
    const state = async () =>
      (
        await fx.db.pool.query(
          `SELECT (SELECT row_to_json(m) FROM (SELECT content, version, deleted_at FROM messages
                                                 WHERE message_id = $2) m) AS message,
                  (SELECT count(*) FROM outbox WHERE session_id = $1)::int AS events,
                  (SELECT message_count FROM sessions WHERE session_id = $1) AS count`,
          [s.session_id, turn.message.message_id],
        )
      ).rows[0];
    const before = await state();
    // authentication first (RFC 9110 §13.2.1): a request that would fail without the precondition is a 401
    const unauthorized = await del(turn.message.message_id, '"99"', "not-a-token");
    expect([unauthorized.status, unauthorized.body.code]).toEqual([401, "unauthorized"]);
    for (const ifMatch of ['"99"', '"2"', 'W/"1"']) {
      const res = await del(turn.message.message_id, ifMatch);
      expect([res.status, res.body.code], ifMatch).toEqual([412, "precondition_failed"]);
      expect(res.contentType).toMatch(/^application\/problem\+json/);
    }
    expect(await state()).toEqual(before);
    // after an edit (ETag "2"), the old version no longer matches, the new one does
    const edited = await fx.call("PUT", "/messages/edit", {
      json: { session_id: s.session_id, message_id: turn.message.message_id, content: "changed my mind" },
      token: t,
    });
    expect(edited.headers.get("etag")).toBe('"2"');
    expect((await del(turn.message.message_id, '"1"')).status).toBe(412);
    const ok = await del(turn.message.message_id, '"7", "2"');
    expect([ok.status, ok.body]).toEqual([200, { message_id: turn.message.message_id, deleted: true }]);
    expect((await state()).message).toMatchObject({ content: "", version: 3 });
    // `*`: any version, the message must only exist
    const other = (await post("any version will do")).body;
    expect((await del(other.message.message_id, "*")).status).toBe(200);
    expect((await del(other.message.message_id, "*")).body.code).toBe("message_not_found");
  });
});

describe("POST /sessions/create names the new session in Location", () => {
  it("on a first answer and on its replay", async () => {
    const key = `location-${crypto.randomUUID()}`;
    const send = () =>
      fx.call<Created>("POST", "/sessions/create", { json: {}, headers: { "idempotency-key": key } });
    const first = await send();
    const replay = await send();
    expect([first.status, replay.status, replay.headers.get("idempotent-replayed")]).toEqual([
      201,
      201,
      "true",
    ]);
    for (const res of [first, replay])
      expect(res.headers.get("location")).toBe(`/sessions/${first.body.session.session_id}`);
  });
});

describe("DELETE /messages/delete takes its ids from the query and the body together", () => {
  it("ids in the query with a JSON body of {} delete, as does one id in each, or the same id in both", async () => {
    const created = await fx.call<Created>("POST", "/sessions/create");
    const sid = created.body.session.session_id;
    const token = created.body.token;
    const turn = await fx.call<Turn>("POST", "/messages/post", {
      json: { session_id: sid, content: "one" },
      token,
    });
    const other = await fx.call<Turn>("POST", "/messages/post", {
      json: { session_id: sid, content: "two" },
      token,
    });
    const deletes: [string, Record<string, string>, string][] = [
      [`?session_id=${sid}&message_id=${turn.body.message.message_id}`, {}, turn.body.message.message_id],
      [`?session_id=${sid}`, { message_id: turn.body.reply.message_id }, turn.body.reply.message_id],
      // the same id, once in capitals: the schema reads both as one UUID
      [
        `?session_id=${sid.toUpperCase()}&message_id=${other.body.message.message_id}`,
        { session_id: sid, message_id: other.body.message.message_id },
        other.body.message.message_id,
      ],
    ];
    for (const [query, json, deleted] of deletes) {
      const res = await fx.call("DELETE", `/messages/delete${query}`, { json, token });
      expect(res.status, `${query} ${JSON.stringify(json)}: ${res.text}`).toBe(200);
      expect(res.body).toEqual({ message_id: deleted, deleted: true });
    }
    const left = await readAll(sid, token);
    expect(left.map((m) => m.message_id)).toEqual([
      created.body.messages[0]?.message_id,
      other.body.reply.message_id,
    ]);
  });
});
