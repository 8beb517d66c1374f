import { createHash, randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { idempotencyRequest } from "../../functions/http/idempotency-header.ts";
import { postMessageBody } from "../../functions/http/schemas.ts";
import { requestBodyBytes } from "../../layers/chat/config.ts";
import { rowCounts } from "../helpers/chat-fixture.ts";
import { assertMatchesOpenApi, loadOpenApiDocument } from "../helpers/openapi-validator.ts";
import { freePort } from "../helpers/private-redis.ts";
import {
  type ApiResponse,
  type CallOptions,
  createSession,
  postMessage,
  type RunnerFixture,
  startRunnerFixture,
} from "../helpers/runner-fixture.ts";

/**
 * Every status and code of the error contract, over real HTTP: the problem+json shape, the status of the
 * code, the headers that go with it (Allow, Retry-After), and that the failed request changed nothing in
 * the database. Every response is also validated against docs/openapi.json by the fixture.
 */
interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  request_id: string;
  errors?: { path: string; message: string }[];
}

const LOCK_TIMEOUT_MS = 200;
let fx: RunnerFixture;
let a: { sessionId: string; token: string; welcomeId: string };
let b: { sessionId: string; token: string; welcomeId: string };
let aTurn: { messageId: string; replyId: string };

beforeAll(async () => {
  fx = await startRunnerFixture({ env: { SESSION_LOCK_TIMEOUT_MS: String(LOCK_TIMEOUT_MS) } });
  a = await createSession(fx, { user_id: "alice" });
  b = await createSession(fx, { user_id: "bob" });
  aTurn = await postMessage(fx, a, "Hello!");
  await postMessage(fx, b, "Hi from b");
});
afterAll(async () => {
  await fx?.close();
});

/** Rows, versions and the content of every session and message: "nothing changed" means this is equal. */
async function snapshot() {
  const counts = await rowCounts(fx.db.pool);
  const digest = await fx.db.pool.query(
    `SELECT md5(coalesce((SELECT string_agg(concat_ws('|', session_id, generation, last_seq, message_count, updated_at, suggestions), ',' ORDER BY session_id) FROM sessions), '')
             || coalesce((SELECT string_agg(concat_ws('|', message_id, content, version, edited_at, deleted_at), ',' ORDER BY message_id) FROM messages), '')
             || coalesce((SELECT string_agg(concat_ws('|', scope, idempotency_key, status), ',' ORDER BY scope, idempotency_key) FROM idempotency_records), '')) AS digest`,
  );
  return { ...counts, digest: digest.rows[0].digest as string };
}

/** Sends the request and checks it answered the problem `code` with `status`, changing nothing. */
async function expectProblem(
  status: number,
  code: string,
  method: string,
  path: string,
  opts: CallOptions = {},
): Promise<ApiResponse<Problem>> {
  const before = await snapshot();
  const res = await fx.call<Problem>(method, path, opts);
  expect(res.status, `${method} ${path}: ${res.text}`).toBe(status);
  expect(res.contentType).toBe("application/problem+json");
  expect(res.body).toMatchObject({ status, code, title: expect.any(String), detail: expect.any(String) });
  expect(res.body.title.length).toBeGreaterThan(0);
  expect(res.body.type).toMatch(/^(https:\/\/|about:blank)/);
  expect(res.body.request_id).toBe(res.headers.get("x-request-id"));
  expect(await snapshot(), `${method} ${path} changed the database`).toEqual(before);
  return res;
}

const typeOf = (code: string) => `https://chat-backend.example/problems/${code.replaceAll("_", "-")}`;

describe("400 validation_failed", () => {
  it("rejects an unknown field in a body", async () => {
    const res = await expectProblem(400, "validation_failed", "POST", "/messages/post", {
      json: { session_id: a.sessionId, content: "hi", admin: true },
      token: a.token,
    });
    expect(res.body.type).toBe(typeOf("validation_failed"));
    expect(res.body.errors).toEqual([{ path: "admin", message: "unknown field" }]);
  });

  it("names each unknown key where it is: in the body, in the query", async () => {
    const body = await expectProblem(400, "validation_failed", "POST", "/sessions/create", {
      json: { role: "admin", debug: 1 },
    });
    expect(body.body.errors).toEqual([
      { path: "role", message: "unknown field" },
      { path: "debug", message: "unknown field" },
    ]);
    const query = await expectProblem(
      400,
      "validation_failed",
      "GET",
      `/sessions/${a.sessionId}/messages?_=17`,
      {
        token: a.token,
      },
    );
    expect(query.body.errors).toEqual([{ path: "query._", message: "unknown field" }]);
  });

  it("rejects an unknown field in POST /sessions/create", async () => {
    await expectProblem(400, "validation_failed", "POST", "/sessions/create", { json: { role: "admin" } });
  });

  it("names the failing field: empty content, a session_id that is not a UUID", async () => {
    const empty = await expectProblem(400, "validation_failed", "POST", "/messages/post", {
      json: { session_id: a.sessionId, content: "" },
      token: a.token,
    });
    expect(empty.body.errors).toContainEqual({ path: "content", message: expect.any(String) });
    const badId = await expectProblem(400, "validation_failed", "POST", "/messages/post", {
      json: { session_id: "12345", content: "hi" },
      token: a.token,
    });
    expect(badId.body.errors).toContainEqual({ path: "session_id", message: expect.any(String) });
  });

  it("rejects a missing body where one is required", async () => {
    await expectProblem(400, "validation_failed", "POST", "/messages/post", { token: a.token });
    await expectProblem(400, "validation_failed", "PUT", "/messages/edit", { token: a.token });
  });

  it("rejects content longer than 8,000 characters (counted in code points)", async () => {
    await expectProblem(400, "validation_failed", "POST", "/messages/post", {
      json: { session_id: a.sessionId, content: "😀".repeat(8001) },
      token: a.token,
    });
  });

  it("states the real limit, 8,000 characters, to every content over it: 8,001, 32,001 or 90,000 characters, on post and edit", async () => {
    const limit = { path: "content", message: "must be at most 8000 characters" };
    for (const content of ["a".repeat(8001), "😀".repeat(8001), "a".repeat(32_001), "a".repeat(90_000)]) {
      const posted = await expectProblem(400, "validation_failed", "POST", "/messages/post", {
        json: { session_id: a.sessionId, content },
        token: a.token,
      });
      const edited = await expectProblem(400, "validation_failed", "PUT", "/messages/edit", {
        json: { session_id: a.sessionId, message_id: aTurn.messageId, content },
        token: a.token,
      });
      for (const res of [posted, edited]) {
        expect(res.body.errors, `${content.length} UTF-16 units`).toEqual([limit]);
        expect(res.body.detail).toBe("content must be at most 8000 characters");
      }
    }
  });

  it("refuses content of only invisible characters (default-ignorable code points) as it refuses white space alone, on post and edit", async () => {
    const send = (method: "POST" | "PUT", content: string) =>
      expectProblem(
        400,
        "validation_failed",
        method,
        method === "POST" ? "/messages/post" : "/messages/edit",
        {
          json: {
            session_id: a.sessionId,
            ...(method === "PUT" ? { message_id: aTurn.messageId } : {}),
            content,
          },
          token: a.token,
        },
      );
    const blank = (await send("POST", " \n\t")).body;
    expect(blank.errors).toEqual([{ path: "content", message: expect.stringMatching(/must not be empty/) }]);
    // zero-width space, word joiner, Hangul filler, BOM, soft hyphen, zero-width joiner with white space
    for (const content of ["\u200b", "\u2060", "\u3164", "\ufeff", "\u00ad", " \u200b\n\u200d\u2060 "]) {
      for (const method of ["POST", "PUT"] as const) {
        const res = await send(method, content);
        expect(res.body.errors, `${method} ${JSON.stringify(content)}`).toEqual(blank.errors);
        expect(res.body.detail).toBe(blank.detail);
      }
    }
    // an invisible character beside a visible one is content like any other, stored as sent
    const posted = await fx.call<{ message: { content: string } }>("POST", "/messages/post", {
      json: { session_id: a.sessionId, content: "\u200bhi\u200b" },
      token: a.token,
    });
    expect([posted.status, posted.body.message.content]).toEqual([201, "\u200bhi\u200b"]);
  });

  it("rejects limit outside 1–200, a limit or after_seq not in decimal digits and a negative after_seq", async () => {
    const notDecimal = [
      "limit=0x10",
      "limit=1e1",
      "limit=%205",
      "limit=5.0",
      "limit=",
      "after_seq=",
      "after_seq=+1",
    ];
    for (const query of [
      "limit=0",
      "limit=201",
      "limit=abc",
      "after_seq=-1",
      "limit=2&extra=1",
      ...notDecimal,
    ]) {
      const res = await expectProblem(
        400,
        "validation_failed",
        "GET",
        `/sessions/${a.sessionId}/messages?${query}`,
        {
          token: a.token,
        },
      );
      expect(res.body.errors?.[0]?.path, query).toMatch(/^query\./);
      if (notDecimal.includes(query)) expect(res.body.errors?.[0]?.message, query).toMatch(/decimal digits/);
    }
  });

  it("rejects a path session id that is not a UUID", async () => {
    const res = await expectProblem(400, "validation_failed", "GET", "/sessions/not-a-uuid", {
      token: a.token,
    });
    expect(res.body.errors).toContainEqual({ path: "path.session_id", message: expect.any(String) });
  });

  it("rejects regenerate on a user message that is not the latest", async () => {
    const later = await postMessage(fx, a, "second message");
    const res = await expectProblem(400, "validation_failed", "PUT", "/messages/edit", {
      json: { session_id: a.sessionId, message_id: aTurn.messageId, content: "x", regenerate: true },
      token: a.token,
    });
    expect(res.body.errors).toContainEqual({ path: "regenerate", message: expect.any(String) });
    expect(later.messageId).toBeTruthy();
  });

  it("DELETE /messages/delete: an id given in the query and the body with different values is a 400 naming it, and nothing is deleted", async () => {
    const turn = await postMessage(fx, a, "delete me, or not");
    const res = await expectProblem(
      400,
      "validation_failed",
      "DELETE",
      `/messages/delete?session_id=${a.sessionId}&message_id=${turn.messageId}`,
      { json: { session_id: a.sessionId, message_id: turn.replyId }, token: a.token },
    );
    expect(res.body.errors).toEqual([
      { path: "query.message_id", message: "differs from message_id in the body" },
    ]);
    expect(res.body.detail).toContain("query.message_id");
  });

  it("DELETE /messages/delete: an unknown query parameter is named at query.<key>, as on the history route, with a body or without", async () => {
    const query = `/messages/delete?session_id=${a.sessionId}&message_id=${aTurn.messageId}&x=1`;
    const alone = await expectProblem(400, "validation_failed", "DELETE", query, { token: a.token });
    expect(alone.body.errors).toEqual([{ path: "query.x", message: "unknown field" }]);
    const withBody = await expectProblem(400, "validation_failed", "DELETE", query, {
      json: {},
      token: a.token,
    });
    expect(withBody.body.errors).toEqual([{ path: "query.x", message: "unknown field" }]);
  });

  it("rejects an Idempotency-Key that is not 1–255 visible ASCII characters", async () => {
    await expectProblem(400, "validation_failed", "POST", "/messages/post", {
      json: { session_id: a.sessionId, content: "hi" },
      headers: { "idempotency-key": "k".repeat(256) },
      token: a.token,
    });
  });
});

describe("400 malformed_json", () => {
  it("rejects a body that is not JSON", async () => {
    const res = await expectProblem(400, "malformed_json", "POST", "/messages/post", {
      rawBody: `{"session_id": "${a.sessionId}", "content": `,
      headers: { "content-type": "application/json" },
      token: a.token,
    });
    expect(res.body.type).toBe(typeOf("malformed_json"));
  });

  it("rejects malformed JSON on POST /sessions/create and PUT /messages/edit too", async () => {
    await expectProblem(400, "malformed_json", "POST", "/sessions/create", {
      rawBody: "{nope",
      headers: { "content-type": "application/json" },
    });
    await expectProblem(400, "malformed_json", "PUT", "/messages/edit", {
      rawBody: "[1,",
      headers: { "content-type": "application/json; charset=utf-8" },
      token: a.token,
    });
  });
});

describe("401 unauthorized", () => {
  const routes = () =>
    [
      ["GET", `/sessions/${a.sessionId}`, undefined],
      ["GET", `/sessions/${a.sessionId}/messages`, undefined],
      ["GET", `/sessions/${a.sessionId}/suggestions`, undefined],
      ["DELETE", `/sessions/${a.sessionId}`, undefined],
      ["POST", "/messages/post", { session_id: a.sessionId, content: "hi" }],
      ["PUT", "/messages/edit", { session_id: a.sessionId, message_id: aTurn.messageId, content: "x" }],
      ["DELETE", "/messages/delete", { session_id: a.sessionId, message_id: aTurn.messageId }],
    ] as const;

  it("answers 401 on every session-scoped route without an Authorization header", async () => {
    for (const [method, path, json] of routes()) {
      const res = await expectProblem(401, "unauthorized", method, path, { json });
      expect(res.body.type).toBe(typeOf("unauthorized"));
      // RFC 9110 §15.5.2: a 401 says which scheme would do (RFC 6750's Bearer)
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="chat"');
    }
  });

  it("answers 401 on every session-scoped route with a wrong token or a non-Bearer scheme", async () => {
    for (const [method, path, json] of routes()) {
      const wrong = await expectProblem(401, "unauthorized", method, path, { json, token: `${a.token}x` });
      expect(wrong.headers.get("www-authenticate")).toBe('Bearer realm="chat"');
      await expectProblem(401, "unauthorized", method, path, {
        json,
        headers: { authorization: `Basic ${a.token}` },
      });
    }
  });
});

describe("404", () => {
  it("session_not_found: a valid token of another session, on every session-scoped route", async () => {
    const routes = [
      ["GET", `/sessions/${a.sessionId}`, undefined],
      ["GET", `/sessions/${a.sessionId}/messages`, undefined],
      ["GET", `/sessions/${a.sessionId}/suggestions`, undefined],
      ["DELETE", `/sessions/${a.sessionId}`, undefined],
      ["POST", "/messages/post", { session_id: a.sessionId, content: "hi" }],
      ["PUT", "/messages/edit", { session_id: a.sessionId, message_id: aTurn.messageId, content: "x" }],
      ["DELETE", "/messages/delete", { session_id: a.sessionId, message_id: aTurn.messageId }],
    ] as const;
    for (const [method, path, json] of routes) {
      const res = await expectProblem(404, "session_not_found", method, path, { json, token: b.token });
      expect(res.body.type).toBe(typeOf("session_not_found"));
    }
  });

  it("session_not_found: a session id that does not exist, with a valid token", async () => {
    await expectProblem(404, "session_not_found", "GET", `/sessions/${randomUUID()}`, { token: a.token });
  });

  it("message_not_found: an unknown message id, on edit and delete", async () => {
    const ghost = randomUUID();
    const res = await expectProblem(404, "message_not_found", "DELETE", "/messages/delete", {
      json: { session_id: a.sessionId, message_id: ghost },
      token: a.token,
    });
    expect(res.body.type).toBe(typeOf("message_not_found"));
    await expectProblem(404, "message_not_found", "PUT", "/messages/edit", {
      json: { session_id: a.sessionId, message_id: ghost, content: "x" },
      token: a.token,
    });
  });

  it("message_not_found: another session's message, even with this session's valid token", async () => {
    await expectProblem(404, "message_not_found", "DELETE", "/messages/delete", {
      json: { session_id: a.sessionId, message_id: b.welcomeId },
      token: a.token,
    });
  });

  it("message_not_found: a message that is already deleted (delete by query, then again)", async () => {
    const turn = await postMessage(fx, a, "to be deleted");
    const query = `/messages/delete?session_id=${a.sessionId}&message_id=${turn.messageId}`;
    const first = await fx.call("DELETE", query, { token: a.token });
    expect(first.status).toBe(200);
    await expectProblem(404, "message_not_found", "DELETE", query, { token: a.token });
    await expectProblem(404, "message_not_found", "PUT", "/messages/edit", {
      json: { session_id: a.sessionId, message_id: turn.messageId, content: "back?" },
      token: a.token,
    });
  });

  it("route_not_found: a path no route takes", async () => {
    for (const path of ["/nope", "/sessions", `/sessions/${a.sessionId}/messages/extra`, "/messages"]) {
      const res = await expectProblem(404, "route_not_found", "GET", path);
      expect(res.body.detail).toContain(path.split("?")[0]);
    }
  });
});

describe("405 method_not_allowed", () => {
  it("answers 405 with an Allow header listing exactly the methods the route has", async () => {
    const cases: [string, string, string[]][] = [
      ["POST", "/health", ["GET"]],
      ["GET", "/messages/post", ["POST"]],
      ["POST", "/messages/edit", ["PUT"]],
      ["GET", "/messages/delete", ["DELETE"]],
      ["PUT", "/openapi.json", ["GET"]],
      ["PATCH", `/sessions/${a.sessionId}`, ["DELETE", "GET"]],
      ["POST", `/sessions/${a.sessionId}/messages`, ["GET"]],
    ];
    for (const [method, path, allow] of cases) {
      const res = await expectProblem(405, "method_not_allowed", method, path, { token: a.token });
      expect(
        res.headers
          .get("allow")
          ?.split(",")
          .map((m) => m.trim())
          .sort(),
        `${method} ${path}`,
      ).toEqual(allow);
    }
  });

  it("the Allow header of every documented path equals the methods docs/openapi.json lists for it", async () => {
    const doc = loadOpenApiDocument();
    const templates = Object.keys(doc.paths);
    const matches = (template: string, path: string) =>
      new RegExp(`^${template.replace(/\{\w+\}/g, "[^/]+")}$`).test(path);
    for (const template of templates) {
      const path = template.replace("{session_id}", a.sessionId);
      // a literal path (/sessions/create) is also a value of /sessions/{session_id}: both count
      const documented = templates
        .filter((t) => matches(t, path))
        .flatMap((t) => Object.keys(doc.paths[t] ?? {}));
      const res = await fx.call<Problem>("PATCH", path);
      expect(res.status, template).toBe(405);
      expect(
        res.headers
          .get("allow")
          ?.split(",")
          .map((m) => m.trim().toLowerCase())
          .sort(),
        path,
      ).toEqual([...new Set(documented)].sort());
    }
  });
});

describe("409", () => {
  it("message_not_editable: editing the bot's message", async () => {
    const res = await expectProblem(409, "message_not_editable", "PUT", "/messages/edit", {
      json: { session_id: a.sessionId, message_id: aTurn.replyId, content: "I am the bot now" },
      token: a.token,
    });
    expect(res.body.type).toBe(typeOf("message_not_editable"));
    await expectProblem(409, "message_not_editable", "PUT", "/messages/edit", {
      json: { session_id: a.sessionId, message_id: a.welcomeId, content: "x" },
      token: a.token,
    });
  });

  it("version_conflict: a stale expected_version in the body", async () => {
    const res = await expectProblem(409, "version_conflict", "PUT", "/messages/edit", {
      json: { session_id: a.sessionId, message_id: aTurn.messageId, content: "x", expected_version: 7 },
      token: a.token,
    });
    expect(res.body.type).toBe(typeOf("version_conflict"));
  });

  it("request_in_progress: the same Idempotency-Key while the first request still runs, after ~2 s, with Retry-After", async () => {
    const body = { session_id: a.sessionId, content: "in flight" };
    const key = `in-progress-${randomUUID()}`;
    const idem = idempotencyRequest(
      { "idempotency-key": key },
      `messages-post:${a.sessionId}`,
      postMessageBody.parse(body),
    );
    if (!idem) throw new Error("no idempotency request");
    await fx.db.pool.query(
      `INSERT INTO idempotency_records (scope, idempotency_key, request_hash, status, locked_until, expires_at)
       VALUES ($1, $2, $3, 'in_progress', now() + interval '60 seconds', now() + interval '1 day')`,
      [idem.scope, createHash("sha256").update(`${idem.scope}\n${idem.key}`).digest("hex"), idem.requestHash],
    );
    const started = Date.now();
    const res = await expectProblem(409, "request_in_progress", "POST", "/messages/post", {
      json: body,
      headers: { "idempotency-key": key },
      token: a.token,
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    // Retry-After: until the claim's lock (60 s from the insert above) ends, less the ~2 s already waited
    const retryAfter = Number(res.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(55);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(res.body.type).toBe(typeOf("request_in_progress"));
  });

  it("session_busy: a post to a session whose row another transaction holds locked answers 409 with Retry-After, within the lock timeout", async () => {
    const locker = new pg.Client({ connectionString: fx.db.url });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("SELECT session_id FROM sessions WHERE session_id = $1 FOR UPDATE", [a.sessionId]);
      const started = Date.now();
      const res = await expectProblem(409, "session_busy", "POST", "/messages/post", {
        json: { session_id: a.sessionId, content: "are you there?" },
        token: a.token,
      });
      const took = Date.now() - started;
      expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(res.body.type).toBe(typeOf("session_busy"));
      // the lock timeout is 200 ms; allow the optimistic attempt and HTTP around it, not a statement timeout
      expect(took).toBeLessThan(2000);
    } finally {
      await locker.query("ROLLBACK").catch(() => {});
      await locker.end();
    }
    // the lock released, the same post goes through
    const ok = await fx.call("POST", "/messages/post", {
      json: { session_id: a.sessionId, content: "are you there?" },
      token: a.token,
    });
    expect(ok.status).toBe(201);
  });

  it("session_busy: edit and delete on a locked session answer 409 too, as documented", async () => {
    const locker = new pg.Client({ connectionString: fx.db.url });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("SELECT session_id FROM sessions WHERE session_id = $1 FOR UPDATE", [a.sessionId]);
      await expectProblem(409, "session_busy", "PUT", "/messages/edit", {
        json: { session_id: a.sessionId, message_id: aTurn.messageId, content: "edited while locked" },
        token: a.token,
      });
      await expectProblem(409, "session_busy", "DELETE", "/messages/delete", {
        json: { session_id: a.sessionId, message_id: aTurn.messageId },
        token: a.token,
      });
    } finally {
      await locker.query("ROLLBACK").catch(() => {});
      await locker.end();
    }
  });
});

describe("412 precondition_failed", () => {
  it("If-Match naming a version the message is not at", async () => {
    const res = await expectProblem(412, "precondition_failed", "PUT", "/messages/edit", {
      json: { session_id: a.sessionId, message_id: aTurn.messageId, content: "x" },
      headers: { "if-match": '"9"' },
      token: a.token,
    });
    expect(res.body.type).toBe(typeOf("precondition_failed"));
  });

  it("authenticates first (RFC 9110 §13.2.1): without a token, or with a wrong one, it is a 401 whatever If-Match says", async () => {
    const json = { session_id: a.sessionId, message_id: aTurn.messageId, content: "x", expected_version: 2 };
    await expectProblem(401, "unauthorized", "PUT", "/messages/edit", {
      json,
      headers: { "if-match": '"1"' },
    });
    for (const ifMatch of ['"1"', 'W/"1"', '"9"'])
      await expectProblem(401, "unauthorized", "PUT", "/messages/edit", {
        json: { ...json, expected_version: undefined },
        headers: { "if-match": ifMatch },
        token: `${a.token}x`,
      });
  });

  it("evaluates If-Match only on a message it could edit: an unknown message is a 404, the bot's a 409, whatever If-Match says", async () => {
    await expectProblem(404, "message_not_found", "PUT", "/messages/edit", {
      json: { session_id: a.sessionId, message_id: randomUUID(), content: "x", expected_version: 2 },
      headers: { "if-match": '"1"' },
      token: a.token,
    });
    for (const ifMatch of ['W/"1"', '"9"'])
      await expectProblem(409, "message_not_editable", "PUT", "/messages/edit", {
        json: { session_id: a.sessionId, message_id: aTurn.replyId, content: "x" },
        headers: { "if-match": ifMatch },
        token: a.token,
      });
  });

  it("If-Match and expected_version that disagree", async () => {
    const res = await expectProblem(412, "precondition_failed", "PUT", "/messages/edit", {
      json: { session_id: a.sessionId, message_id: aTurn.messageId, content: "x", expected_version: 1 },
      headers: { "if-match": '"2"' },
      token: a.token,
    });
    expect(res.body.detail).toBe("If-Match and expected_version disagree");
  });

  it("If-Match and expected_version must both hold: a list naming the current version does not widen a stale expected_version", async () => {
    const turn = await postMessage(fx, a, "both preconditions");
    const edit = { session_id: a.sessionId, message_id: turn.messageId };
    const first = await fx.call("PUT", "/messages/edit", {
      json: { ...edit, content: "v2" },
      token: a.token,
    });
    expect(first.status).toBe(200);
    await expectProblem(412, "precondition_failed", "PUT", "/messages/edit", {
      json: { ...edit, content: "v3", expected_version: 1 },
      headers: { "if-match": '"1", "2"' },
      token: a.token,
    });
  });

  it("If-Match as RFC 9110 has it: a weak tag never matches, a list matches any of its tags, * any version; a malformed one is a 400", async () => {
    const turn = await postMessage(fx, a, "versions, please");
    const edit = (ifMatch: string) =>
      fx.call<{ message: { version: number } }>("PUT", "/messages/edit", {
        json: { session_id: a.sessionId, message_id: turn.messageId, content: `edited under ${ifMatch}` },
        headers: { "if-match": ifMatch },
        token: a.token,
      });
    await expectProblem(412, "precondition_failed", "PUT", "/messages/edit", {
      json: { session_id: a.sessionId, message_id: turn.messageId, content: "x" },
      headers: { "if-match": 'W/"1"' },
      token: a.token,
    });
    const listed = await edit('"7", , "1",');
    expect([listed.status, listed.body.message.version]).toEqual([200, 2]);
    const any = await edit("*");
    expect([any.status, any.body.message.version]).toEqual([200, 3]);
    const res = await expectProblem(400, "validation_failed", "PUT", "/messages/edit", {
      json: { session_id: a.sessionId, message_id: turn.messageId, content: "x" },
      headers: { "if-match": '"abc"' },
      token: a.token,
    });
    expect(res.body.errors).toEqual([expect.objectContaining({ path: "headers.if-match" })]);
  });
});

describe("400 for metadata that would not be stored as sent", () => {
  it("refuses a __proto__ key, at the top or nested, a number a double cannot hold, and an integer it would round", async () => {
    const cases = [
      ['{"metadata":{"__proto__":{"x":1},"a":1}}', ""],
      [String.raw`{"metadata":{"a":{"b":{"\u005f\u005fpr\u006fto\u005f\u005f":1}}}}`, ""],
      ['{"metadata":{"a":[1,1e400]}}', "metadata.a.1"],
      ['{"metadata":{"tweet_id":1850000000000000001}}', "metadata.tweet_id"],
    ] as const;
    for (const [rawBody, path] of cases) {
      const res = await expectProblem(400, "validation_failed", "POST", "/sessions/create", {
        rawBody,
        headers: { "content-type": "application/json" },
      });
      expect(res.body.errors?.map((e) => e.path)).toContain(path);
    }
  });
});

describe("user_id counts characters as the OpenAPI document does (code points)", () => {
  it("takes 200 emoji (400 UTF-16 units) and refuses 257 characters", async () => {
    const ok = await fx.call("POST", "/sessions/create", { json: { user_id: "😀".repeat(200) } });
    expect(ok.status).toBe(201);
    await expectProblem(400, "validation_failed", "POST", "/sessions/create", {
      json: { user_id: "😀".repeat(257) },
    });
  });
});

describe("413 payload_too_large", () => {
  it("rejects a body over MAX_BODY_BYTES (by default what 8,000 characters need) before anything runs", async () => {
    const big = "a".repeat(requestBodyBytes(8000) + 1);
    const res = await expectProblem(413, "payload_too_large", "POST", "/messages/post", {
      json: { session_id: a.sessionId, content: big },
      token: a.token,
    });
    expect(res.body.type).toBe(typeOf("payload_too_large"));
    await expectProblem(413, "payload_too_large", "POST", "/sessions/create", {
      json: { metadata: { blob: big } },
    });
    await expectProblem(413, "payload_too_large", "PUT", "/messages/edit", {
      json: { session_id: a.sessionId, message_id: aTurn.messageId, content: big },
      token: a.token,
    });
  });
});

describe("the body bound fits the content bound", () => {
  it("accepts a message of 8,000 emoji from a client that writes ASCII-only JSON (12 bytes each)", async () => {
    const json = JSON.stringify({ session_id: a.sessionId, content: "😀".repeat(8000) });
    const rawBody = json.replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
    expect(Buffer.byteLength(rawBody)).toBeGreaterThan(96_000); // over the 64 KiB bound this replaced
    const res = await fx.call("POST", "/messages/post", {
      rawBody,
      headers: { "content-type": "application/json" },
      token: a.token,
    });
    expect(res.status, res.text.slice(0, 200)).toBe(201);
  });
});

describe("415 unsupported_media_type", () => {
  it("rejects a body that is not sent as application/json", async () => {
    const json = JSON.stringify({ session_id: a.sessionId, content: "hi" });
    const res = await expectProblem(415, "unsupported_media_type", "POST", "/messages/post", {
      rawBody: json,
      headers: { "content-type": "text/plain" },
      token: a.token,
    });
    expect(res.body.type).toBe(typeOf("unsupported_media_type"));
    await expectProblem(415, "unsupported_media_type", "POST", "/sessions/create", {
      rawBody: "user_id=x",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    await expectProblem(415, "unsupported_media_type", "DELETE", "/messages/delete", {
      rawBody: JSON.stringify({ session_id: a.sessionId, message_id: aTurn.messageId }),
      headers: { "content-type": "text/plain" },
      token: a.token,
    });
  });
});

describe("422 idempotency_key_reused", () => {
  it("the same Idempotency-Key with a different body", async () => {
    const key = `reused-${randomUUID()}`;
    const first = await fx.call("POST", "/messages/post", {
      json: { session_id: a.sessionId, content: "first body" },
      headers: { "idempotency-key": key },
      token: a.token,
    });
    expect(first.status).toBe(201);
    const res = await expectProblem(422, "idempotency_key_reused", "POST", "/messages/post", {
      json: { session_id: a.sessionId, content: "another body" },
      headers: { "idempotency-key": key },
      token: a.token,
    });
    expect(res.body.type).toBe(typeOf("idempotency_key_reused"));
  });
});

// Last: this swaps the runner's DATABASE_URL for a port nobody listens on.
describe("503 service_unavailable (Postgres unreachable)", () => {
  beforeAll(async () => {
    const port = await freePort();
    const u = new URL(fx.db.url);
    u.port = String(port);
    await fx.reconfigure({
      SESSION_LOCK_TIMEOUT_MS: String(LOCK_TIMEOUT_MS),
      DATABASE_URL: u.toString(),
      DB_CONNECT_TIMEOUT_MS: "500",
    });
  });

  it("answers 503 problem+json with Retry-After on routes that need Postgres", async () => {
    // Reads of a session the cache holds are still served; a session it does not hold needs Postgres.
    const uncached = randomUUID();
    const cases = [
      ["POST", "/sessions/create", {}],
      ["GET", `/sessions/${uncached}`, undefined],
      ["GET", `/sessions/${uncached}/messages`, undefined],
      ["GET", `/sessions/${uncached}/suggestions`, undefined],
      ["POST", "/messages/post", { session_id: a.sessionId, content: "hi" }],
      ["PUT", "/messages/edit", { session_id: a.sessionId, message_id: aTurn.messageId, content: "x" }],
      ["DELETE", "/messages/delete", { session_id: a.sessionId, message_id: aTurn.messageId }],
      ["DELETE", `/sessions/${a.sessionId}`, undefined],
    ] as const;
    for (const [method, path, json] of cases) {
      const res = await expectProblem(503, "service_unavailable", method, path, { json, token: a.token });
      expect(res.headers.get("retry-after"), `${method} ${path}`).toMatch(/^\d+$/);
      expect(res.body.type).toBe(typeOf("service_unavailable"));
    }
  });

  it("GET /health answers 503 with postgres down (and the rest still reported)", async () => {
    const res = await fx.call<{
      status: string;
      checks: Record<string, { status: string; latency_ms: unknown }>;
    }>("GET", "/health", { openapi: false });
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({
      status: "down",
      version: "0.1.0",
      checks: {
        postgres: { status: "down", latency_ms: null },
        redis: { status: "ok", latency_ms: expect.any(Number) },
        kafka: { status: "disabled", latency_ms: null },
      },
    });
    assertMatchesOpenApi("GET", "/health", res.status, res.headers, res.body);
  });
});
