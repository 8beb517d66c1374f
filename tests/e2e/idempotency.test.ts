import { createDecipheriv, createHash, randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { idempotencyRequest } from "../../functions/http/idempotency-header.ts";
import { createSessionBody } from "../../functions/http/schemas.ts";
import { createScope } from "../../functions/sessions-create.ts";
import { rowCounts } from "../helpers/chat-fixture.ts";
import { httpEvent, lambdaContext } from "../helpers/lambda-events.ts";
import { createSession, type RunnerFixture, startRunnerFixture } from "../helpers/runner-fixture.ts";

/**
 * Idempotency-Key on POST /sessions/create and POST /messages/post, over HTTP: a retry replays the first
 * response byte for byte and creates nothing; concurrent duplicates run once; a key reused with another
 * body is 422; a key whose first request still runs is 409 after the wait.
 */
let fx: RunnerFixture;

beforeAll(async () => {
  fx = await startRunnerFixture({ env: { SESSION_LOCK_TIMEOUT_MS: "200" } });
});
afterAll(async () => {
  await fx?.close();
});

const keyHash = (scope: string, key: string) => createHash("sha256").update(`${scope}\n${key}`).digest("hex");

async function sessionRows(sessionId: string) {
  const res = await fx.db.pool.query(
    `SELECT (SELECT last_seq FROM sessions WHERE session_id = $1) AS last_seq,
            (SELECT count(*) FROM messages WHERE session_id = $1)::int AS messages,
            (SELECT count(*) FROM outbox WHERE session_id = $1)::int AS events`,
    [sessionId],
  );
  return res.rows[0] as { last_seq: number; messages: number; events: number };
}

describe("POST /messages/post with an Idempotency-Key", () => {
  it("20 concurrent sends with one key store one user message and its reply, and answer 20 identical bodies", async () => {
    const s = await createSession(fx);
    const before = await sessionRows(s.sessionId);
    const key = `burst-${randomUUID()}`;
    const send = () =>
      fx.call("POST", "/messages/post", {
        json: { session_id: s.sessionId, content: "exactly once, please" },
        headers: { "idempotency-key": key },
        token: s.token,
      });
    const responses = await Promise.all(Array.from({ length: 20 }, send));

    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(201));
    const bodies = new Set(responses.map((r) => r.text));
    expect(bodies.size, [...bodies].join("\n")).toBe(1);
    const replayed = responses.filter((r) => r.headers.get("idempotent-replayed") === "true");
    expect(replayed).toHaveLength(19);
    const original = responses.find((r) => r.headers.get("idempotent-replayed") === null);
    expect(original).toBeDefined();

    const stored = await fx.db.pool.query(
      "SELECT message_id, role, content, reply_to FROM messages WHERE session_id = $1 AND seq > 1 ORDER BY seq",
      [s.sessionId],
    );
    const body = JSON.parse(original?.text ?? "{}");
    expect(stored.rows).toEqual([
      { message_id: body.message.message_id, role: "user", content: "exactly once, please", reply_to: null },
      {
        message_id: body.reply.message_id,
        role: "assistant",
        content: body.reply.content,
        reply_to: body.message.message_id,
      },
    ]);
    expect(await sessionRows(s.sessionId)).toEqual({
      last_seq: before.last_seq + 2,
      messages: before.messages + 2,
      events: before.events + 2,
    });
    const record = await fx.db.pool.query(
      "SELECT status, status_code FROM idempotency_records WHERE scope = $1 AND idempotency_key = $2",
      [`messages-post:${s.sessionId}`, keyHash(`messages-post:${s.sessionId}`, key)],
    );
    expect(record.rows).toEqual([{ status: "completed", status_code: 201 }]);

    // a retry long after: still the same bytes, still nothing new
    const later = await send();
    expect(later.status).toBe(201);
    expect(later.text).toBe(original?.text);
    expect(later.headers.get("idempotent-replayed")).toBe("true");
    expect((await sessionRows(s.sessionId)).messages).toBe(before.messages + 2);
  });

  it("without a key, the same post twice stores two turns (the key is what dedupes)", async () => {
    const s = await createSession(fx);
    const send = () =>
      fx.call("POST", "/messages/post", {
        json: { session_id: s.sessionId, content: "twice" },
        token: s.token,
      });
    const [one, two] = [await send(), await send()];
    expect([one.status, two.status]).toEqual([201, 201]);
    expect(one.text).not.toBe(two.text);
    expect(two.headers.get("idempotent-replayed")).toBeNull();
    expect((await sessionRows(s.sessionId)).messages).toBe(5);
  });

  it("a key is scoped to its session: the same key on another session is a new request", async () => {
    const s1 = await createSession(fx);
    const s2 = await createSession(fx);
    const key = `shared-${randomUUID()}`;
    const r1 = await fx.call("POST", "/messages/post", {
      json: { session_id: s1.sessionId, content: "same key" },
      headers: { "idempotency-key": key },
      token: s1.token,
    });
    const r2 = await fx.call("POST", "/messages/post", {
      json: { session_id: s2.sessionId, content: "same key" },
      headers: { "idempotency-key": key },
      token: s2.token,
    });
    expect([r1.status, r2.status]).toEqual([201, 201]);
    expect(r2.headers.get("idempotent-replayed")).toBeNull();
    expect((await sessionRows(s2.sessionId)).messages).toBe(3);
  });

  it("422 idempotency_key_reused: the same key with a different body, changing nothing", async () => {
    const s = await createSession(fx);
    const key = `reuse-${randomUUID()}`;
    const first = await fx.call("POST", "/messages/post", {
      json: { session_id: s.sessionId, content: "original" },
      headers: { "idempotency-key": key },
      token: s.token,
    });
    expect(first.status).toBe(201);
    const before = await rowCounts(fx.db.pool);
    const res = await fx.call<{ code: string; status: number }>("POST", "/messages/post", {
      json: { session_id: s.sessionId, content: "changed" },
      headers: { "idempotency-key": key },
      token: s.token,
    });
    expect(res.status).toBe(422);
    expect(res.contentType).toBe("application/problem+json");
    expect(res.body).toMatchObject({ status: 422, code: "idempotency_key_reused" });
    expect(await rowCounts(fx.db.pool)).toEqual(before);
    // the original is still what the key replays
    const again = await fx.call("POST", "/messages/post", {
      json: { session_id: s.sessionId, content: "original" },
      headers: { "idempotency-key": key },
      token: s.token,
    });
    expect(again.text).toBe(first.text);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
  });

  it("409 replay_withdrawn once a posted message was edited or deleted: the old text is not replayed, nothing is posted again", async () => {
    const s = await createSession(fx);
    const post = (content: string, key: string) =>
      fx.call<{ message: { message_id: string }; reply: { message_id: string } }>("POST", "/messages/post", {
        json: { session_id: s.sessionId, content },
        headers: { "idempotency-key": key },
        token: s.token,
      });
    const keys = {
      deleted: `del-${randomUUID()}`,
      edited: `edit-${randomUUID()}`,
      kept: `kept-${randomUUID()}`,
    };
    const deleted = await post("my card number is 4111 1111", keys.deleted);
    const kept = await post("nothing changed here", keys.kept);
    const edited = await post("a typo I fixed", keys.edited);
    expect([deleted.status, edited.status, kept.status]).toEqual([201, 201, 201]);
    const del = await fx.call("DELETE", "/messages/delete", {
      json: { session_id: s.sessionId, message_id: deleted.body.message.message_id },
      token: s.token,
    });
    expect(del.status).toBe(200);
    // the edited message's reply is regenerated too: either change withdraws the post's response
    const edit = await fx.call("PUT", "/messages/edit", {
      json: {
        session_id: s.sessionId,
        message_id: edited.body.message.message_id,
        content: "fixed",
        regenerate: true,
      },
      token: s.token,
    });
    expect(edit.status).toBe(200);
    const before = await rowCounts(fx.db.pool);
    for (const [content, key] of [
      ["my card number is 4111 1111", keys.deleted],
      ["a typo I fixed", keys.edited],
    ] as const) {
      const retry = await post(content, key);
      expect(retry.status, key).toBe(409);
      expect(retry.body, key).toMatchObject({ code: "replay_withdrawn" });
      expect(retry.text, key).not.toContain(content);
    }
    expect(await rowCounts(fx.db.pool)).toEqual(before);
    // A release before withdrawals (after a rollback) decrypts the response of any completed record: a withdrawn
    // one is never completed, but held as a claim until it expires, which that release answers 409 too
    const records = await fx.db.pool.query(
      `SELECT status, response IS NULL AS withdrawn, locked_until = expires_at AS held_till_expiry
         FROM idempotency_records WHERE scope = $1 AND idempotency_key = ANY($2)`,
      [
        `messages-post:${s.sessionId}`,
        [keys.deleted, keys.edited].map((k) => keyHash(`messages-post:${s.sessionId}`, k)),
      ],
    );
    expect(records.rows).toEqual([
      { status: "in_progress", withdrawn: true, held_till_expiry: true },
      { status: "in_progress", withdrawn: true, held_till_expiry: true },
    ]);
    // a post whose messages were not touched still replays
    const again = await post("nothing changed here", keys.kept);
    expect(again.text).toBe(kept.text);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
  });

  it("a failed attempt gives its key back: after session_busy, the retry with the key runs for real", async () => {
    const s = await createSession(fx);
    const key = `retry-${randomUUID()}`;
    const send = () =>
      fx.call<{ code?: string }>("POST", "/messages/post", {
        json: { session_id: s.sessionId, content: "after a busy spell" },
        headers: { "idempotency-key": key },
        token: s.token,
      });
    const locker = new pg.Client({ connectionString: fx.db.url });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM sessions WHERE session_id = $1 FOR UPDATE", [s.sessionId]);
      const busy = await send();
      expect(busy.status).toBe(409);
      expect(busy.body.code).toBe("session_busy");
    } finally {
      await locker.query("ROLLBACK").catch(() => {});
      await locker.end();
    }
    const retried = await send();
    expect(retried.status).toBe(201);
    expect(retried.headers.get("idempotent-replayed")).toBeNull();
    expect((await sessionRows(s.sessionId)).messages).toBe(3);
  });
});

describe("POST /sessions/create with an Idempotency-Key", () => {
  it("refuses a key under 16 characters (one two clients behind a NAT could share, or one could guess), creating nothing", async () => {
    const before = await rowCounts(fx.db.pool);
    for (const key of ["1", "retry-1", "a".repeat(15)]) {
      const res = await fx.call<{ code: string; detail: string }>("POST", "/sessions/create", {
        json: {},
        headers: { "idempotency-key": key },
      });
      expect(res.status, key).toBe(400);
      expect(res.body.code).toBe("validation_failed");
      expect(res.body.detail).toMatch(/Idempotency-Key must be 16–255/);
    }
    expect(await rowCounts(fx.db.pool)).toEqual(before);
    // a post's key is scoped by its session and token: short keys stay valid there
    const created = await fx.call<{ session: { session_id: string }; token: string }>(
      "POST",
      "/sessions/create",
      {
        json: {},
        headers: { "idempotency-key": "a".repeat(16) },
      },
    );
    expect(created.status).toBe(201);
    const posted = await fx.call("POST", "/messages/post", {
      json: { session_id: created.body.session.session_id, content: "hi" },
      headers: { "idempotency-key": "1" },
      token: created.body.token,
    });
    expect(posted.status).toBe(201);
  });

  it("a retry with the same key and body returns the same session and token, and creates nothing", async () => {
    const key = `create-${randomUUID()}`;
    const body = { user_id: "idem-user", metadata: { n: 1 } };
    const first = await fx.call<{ session: { session_id: string }; token: string }>(
      "POST",
      "/sessions/create",
      {
        json: body,
        headers: { "idempotency-key": key },
      },
    );
    expect(first.status).toBe(201);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const before = await rowCounts(fx.db.pool);
    const second = await fx.call<{ session: { session_id: string }; token: string }>(
      "POST",
      "/sessions/create",
      {
        json: body,
        headers: { "idempotency-key": key },
      },
    );
    expect(second.status).toBe(201);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    expect(second.text).toBe(first.text);
    expect(second.body.token).toBe(first.body.token);
    expect(second.body.session.session_id).toBe(first.body.session.session_id);
    expect(await rowCounts(fx.db.pool)).toEqual(before);
    // the replayed token works
    const got = await fx.call("GET", `/sessions/${second.body.session.session_id}`, {
      token: second.body.token,
    });
    expect(got.status).toBe(200);
  });

  it("the same key from another address is another client's request: its own session, never the first one's token", async () => {
    const key = "retry-1-of-create"; // a key two unrelated clients could both pick
    const body = {};
    const first = await fx.call<{ token: string }>("POST", "/sessions/create", {
      json: body,
      headers: { "idempotency-key": key },
    });
    expect(first.status).toBe(201);
    // the handler the runner serves, called with another client's address (the runner only sees 127.0.0.1)
    const { handler } = await import("../../functions/sessions-create.ts");
    const fromElsewhere = async () => {
      const res = await handler(
        httpEvent("POST", "/sessions/create", {
          body,
          headers: { "idempotency-key": key },
          sourceIp: "203.0.113.7",
        }),
        lambdaContext("sessions-create"),
      );
      return { ...res, body: JSON.parse(res.body ?? "{}") as { token: string } };
    };
    const other = await fromElsewhere();
    expect(other.statusCode).toBe(201);
    expect(other.headers?.["idempotent-replayed"]).toBeUndefined();
    expect(other.body.token).not.toBe(first.body.token);
    // and that client's own retry replays its own session
    const retried = await fromElsewhere();
    expect(retried.headers?.["idempotent-replayed"]).toBe("true");
    expect(retried.body.token).toBe(other.body.token);
  });

  it("stores the replayable response encrypted: the token does not appear in idempotency_records", async () => {
    const key = `secret-${randomUUID()}`;
    const res = await fx.call<{ token: string }>("POST", "/sessions/create", {
      json: {},
      headers: { "idempotency-key": key },
    });
    expect(res.status).toBe(201);
    const row = await fx.db.pool.query(
      "SELECT idempotency_key, response::text AS response FROM idempotency_records WHERE scope = $1 AND idempotency_key = $2",
      [createScope("127.0.0.1"), keyHash(createScope("127.0.0.1"), key)],
    );
    expect(row.rows).toHaveLength(1);
    expect(row.rows[0].response).not.toContain(res.body.token);
    expect(row.rows[0].idempotency_key).not.toBe(key);
    // AES-256-GCM under a key derived from the client's Idempotency-Key: only that key opens it
    const box = JSON.parse(row.rows[0].response) as { iv: string; tag: string; data: string };
    expect(Buffer.from(box.data, "base64").toString("utf8")).not.toContain(res.body.token);
    const open = (clientKey: string) => {
      const scope = createScope("127.0.0.1");
      const secret = createHash("sha256")
        .update(`chat-idempotency-response\n${scope}\n${clientKey}`)
        .digest();
      const d = createDecipheriv("aes-256-gcm", secret, Buffer.from(box.iv, "base64"));
      d.setAuthTag(Buffer.from(box.tag, "base64"));
      return Buffer.concat([d.update(Buffer.from(box.data, "base64")), d.final()]).toString("utf8");
    };
    expect(open(key)).toContain(res.body.token);
    expect(() => open(`${key}x`)).toThrow();
  });

  it("5 concurrent creates with one key make one session", async () => {
    const key = `create-burst-${randomUUID()}`;
    const before = await rowCounts(fx.db.pool);
    const responses = await Promise.all(
      Array.from({ length: 5 }, () =>
        fx.call("POST", "/sessions/create", {
          json: { user_id: "burst" },
          headers: { "idempotency-key": key },
        }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(5).fill(201));
    expect(new Set(responses.map((r) => r.text)).size).toBe(1);
    expect(responses.filter((r) => r.headers.get("idempotent-replayed") === "true")).toHaveLength(4);
    const after = await rowCounts(fx.db.pool);
    expect(after).toMatchObject({
      sessions: (before.sessions ?? 0) + 1,
      messages: (before.messages ?? 0) + 1,
    });
  });

  it("422 idempotency_key_reused: the same key with a different body creates nothing", async () => {
    const key = `create-reuse-${randomUUID()}`;
    const first = await fx.call("POST", "/sessions/create", {
      json: { user_id: "a" },
      headers: { "idempotency-key": key },
    });
    expect(first.status).toBe(201);
    const before = await rowCounts(fx.db.pool);
    const res = await fx.call<{ code: string }>("POST", "/sessions/create", {
      json: { user_id: "b" },
      headers: { "idempotency-key": key },
    });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe("idempotency_key_reused");
    expect(await rowCounts(fx.db.pool)).toEqual(before);
  });

  it("409 request_in_progress: the same key while the first request still runs, after ~2 s, creating nothing", async () => {
    const key = `create-running-${randomUUID()}`;
    const body = { user_id: "slow" };
    const idem = idempotencyRequest(
      { "idempotency-key": key },
      createScope("127.0.0.1"),
      createSessionBody.parse(body),
    );
    if (!idem) throw new Error("no idempotency request");
    await fx.db.pool.query(
      `INSERT INTO idempotency_records (scope, idempotency_key, request_hash, status, locked_until, expires_at)
       VALUES ($1, $2, $3, 'in_progress', now() + interval '60 seconds', now() + interval '1 day')`,
      [idem.scope, keyHash(idem.scope, key), idem.requestHash],
    );
    const before = await rowCounts(fx.db.pool);
    const started = Date.now();
    const res = await fx.call<{ code: string }>("POST", "/sessions/create", {
      json: body,
      headers: { "idempotency-key": key },
    });
    const took = Date.now() - started;
    expect(res.status).toBe(409);
    expect(res.body.code).toBe("request_in_progress");
    // Retry-After: until the claim's lock (60 s from the insert above) ends, less the ~2 s already waited
    const retryAfter = Number(res.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(55);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(took).toBeGreaterThanOrEqual(1900);
    expect(took).toBeLessThan(5000);
    expect(await rowCounts(fx.db.pool)).toEqual(before);
  });

  it("a claim whose first request died (lock expired) is taken over by the retry", async () => {
    const key = `create-crashed-${randomUUID()}`;
    const body = { user_id: "crashed" };
    const idem = idempotencyRequest(
      { "idempotency-key": key },
      createScope("127.0.0.1"),
      createSessionBody.parse(body),
    );
    if (!idem) throw new Error("no idempotency request");
    await fx.db.pool.query(
      `INSERT INTO idempotency_records (scope, idempotency_key, request_hash, status, locked_until, expires_at)
       VALUES ($1, $2, $3, 'in_progress', now() - interval '1 second', now() + interval '1 day')`,
      [idem.scope, keyHash(idem.scope, key), idem.requestHash],
    );
    const res = await fx.call("POST", "/sessions/create", {
      json: body,
      headers: { "idempotency-key": key },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("idempotent-replayed")).toBeNull();
  });
});
