import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { idempotencyRequest } from "../../functions/http/idempotency-header.ts";
import { functions } from "../../functions/manifest.ts";
import { ChatService } from "../../layers/chat/chat/chat-service.ts";
import { parseConfig } from "../../layers/chat/config.ts";
import {
  applySessionChange,
  insertSession,
  type NewSession,
  type Queryable,
} from "../../layers/chat/db/chat-store.ts";
import { ERASE } from "../../layers/chat/db/erase-store.ts";
import {
  claimIdempotencyKey,
  type IdempotencyRequest,
  idempotencyCompletion,
  legacyRequestHash,
  releaseIdempotencyKey,
} from "../../layers/chat/db/idempotency-store.ts";
import { chatEvent } from "../../layers/chat/events/cloudevents.ts";
import { builtinResponder } from "../../layers/chat/responders/builtin-responder.ts";
import type { Responder } from "../../layers/chat/responders/responder.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";
import { untilWaitingForLock } from "../helpers/lock-waits.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/** A claimed Idempotency-Key belongs to the request that claimed it, for as long as that request can run. */
let db: TestDatabase;
let fx: ChatFixture;
// A paid model (the claim comes before the answer) whose next answer can be held until the test lets it go, and
// then fail if the test set `failWith`.
interface Hold {
  reached: Promise<void>;
  release: () => void;
  failWith?: Error;
}
let held: Hold | null = null;
let reachedHeld = () => {};
const slowFirstAnswer: Responder = {
  name: "paid-model",
  costly: true,
  async respond(history) {
    const hold = held;
    held = null;
    if (hold) {
      reachedHeld();
      await new Promise<void>((r) => {
        hold.release = r;
      });
      if (hold.failWith) throw hold.failWith;
    }
    return builtinResponder.respond(history);
  },
};
/** Holds the next answer; resolves once a request waits on it (it has claimed its key by then). */
function holdNextAnswer(): Hold {
  const hold: Hold = { reached: new Promise<void>((r) => (reachedHeld = r)), release: () => {} };
  held = hold;
  return hold;
}
beforeAll(async () => {
  [db, fx] = await Promise.all([createTestDatabase(4), chatFixture({ responder: slowFirstAnswer })]);
});
afterAll(() => Promise.all([db?.drop(), fx?.close()]));

/** A session written straight through the store (a welcome message, no events), as a create would. */
const insertBareSession = (sessionId: string, extra: Partial<NewSession> = {}) =>
  insertSession(db.pool, {
    sessionId,
    userId: null,
    tokenHash: "00".repeat(32),
    metadata: {},
    at: new Date().toISOString(),
    suggestions: [],
    welcome: { message_id: randomUUID(), seq: 1, role: "assistant", content: "hi", reply_to: null },
    events: [],
    ...extra,
  });

/** For a bare session that outlives its test (token hashes are unique). */
const uniqueTokenHash = () => randomUUID().replaceAll("-", "").repeat(2);

/**
 * The claim's lock runs out (a request stalled past it): the next request with the key may take it over. Only the
 * claims of `req`'s scope (each test has its own), so no test depends on what another left behind.
 */
const expireClaims = (pool: TestDatabase["pool"], req: IdempotencyRequest) =>
  pool.query("UPDATE idempotency_records SET locked_until = now() - interval '1 second' WHERE scope = $1", [
    req.scope,
  ]);

/** A new session on the chat fixture, with a post's Idempotency-Key named `name` on it. */
async function keyedSession(name: string) {
  const created = await fx.chat.createSession({});
  const id = created.session.session_id;
  const key: IdempotencyRequest = { scope: `messages-post:${id}`, key: name, requestHash: "same" };
  return { id, key, auth: () => fx.chat.authorize(id, created.token) };
}

/** The ids of a session's user messages. */
const userTurns = async (sessionId: string) =>
  (
    await fx.db.pool.query("SELECT message_id FROM messages WHERE session_id = $1 AND role = 'user'", [
      sessionId,
    ])
  ).rows.map((r) => r.message_id);

/** The stored responses of `key`'s scope. */
const storedResponses = async (key: IdempotencyRequest) =>
  (await fx.db.pool.query("SELECT response FROM idempotency_records WHERE scope = $1", [key.scope])).rows;

/** The records of `req`'s scope, with each claim's token. */
const recordsOf = async (pool: TestDatabase["pool"], req: IdempotencyRequest) =>
  (
    await pool.query("SELECT status, locked_until::text AS token FROM idempotency_records WHERE scope = $1", [
      req.scope,
    ])
  ).rows;

const req: IdempotencyRequest = { scope: "messages-post:claim-test", key: "k-claim", requestHash: "h" };
const opts = { ttlSeconds: 3600, lockSeconds: 30, waitMs: 0 };

describe("an Idempotency-Key claim", () => {
  it("a duplicate of a request in progress is told to retry once the claim's lock ends, in whole seconds rounded up", async () => {
    const key = { ...req, scope: `messages-post:retry-after-${randomUUID()}` };
    const first = await claimIdempotencyKey(db.pool, key, opts);
    if (first.kind !== "claimed") throw new Error("expected a claim");
    try {
      // a moment of the lock's 30 s has passed: 29.99… s left is a Retry-After of 30, never 29 (too early)
      await expect(claimIdempotencyKey(db.pool, key, opts)).rejects.toMatchObject({
        code: "request_in_progress",
        retryAfterSeconds: opts.lockSeconds,
      });
      // a lock that ends within the second still says 1, not 0 (which would invite an immediate retry storm)
      await db.pool.query(
        "UPDATE idempotency_records SET locked_until = now() + interval '200 milliseconds' WHERE scope = $1",
        [key.scope],
      );
      await expect(claimIdempotencyKey(db.pool, key, opts)).rejects.toMatchObject({ retryAfterSeconds: 1 });
    } finally {
      await releaseIdempotencyKey(db.pool, key, first.token);
    }
  });

  it("a release gives back only its own claim, not the one of a retry that took the key over", async () => {
    const first = await claimIdempotencyKey(db.pool, req, opts);
    if (first.kind !== "claimed") throw new Error("expected a claim");
    // the first request's lock runs out (a crash, a stall) and its retry takes the key over
    await expireClaims(db.pool, req);
    const retry = await claimIdempotencyKey(db.pool, req, opts);
    if (retry.kind !== "claimed") throw new Error("expected the retry to take the key over");
    expect(retry.token).not.toBe(first.token);
    // the first request fails late and releases: the retry's claim stays, so a third duplicate cannot run
    await releaseIdempotencyKey(db.pool, req, first.token);
    await expect(claimIdempotencyKey(db.pool, req, opts)).rejects.toMatchObject({
      code: "request_in_progress",
    });
    // the retry's own release works
    await releaseIdempotencyKey(db.pool, req, retry.token);
    expect(await recordsOf(db.pool, req)).toEqual([]);
  });

  it("a claim blocks the key for lockSeconds and keeps the record for ttlSeconds", async () => {
    const r = { ...req, scope: "messages-post:claim-times" };
    await claimIdempotencyKey(db.pool, r, opts);
    const times = await db.pool.query(
      `SELECT extract(epoch FROM locked_until - now())::float AS locked, extract(epoch FROM expires_at - now())::float AS kept
         FROM idempotency_records WHERE scope = $1`,
      [r.scope],
    );
    const { locked, kept } = times.rows[0];
    expect(locked).toBeLessThanOrEqual(opts.lockSeconds);
    expect(kept).toBeGreaterThan(opts.lockSeconds);
    expect(kept).toBeLessThanOrEqual(opts.ttlSeconds);
  });

  it("a key taken over once its withdrawn record expired is a claim in progress: a duplicate is told to wait, not that a response was withdrawn", async () => {
    const r = { ...req, scope: "messages-post:expired-withdrawn" };
    await claimIdempotencyKey(db.pool, r, opts);
    // withdrawn (in progress with the status code it completed with), then expired
    await db.pool.query(
      `UPDATE idempotency_records SET status_code = 201, locked_until = now() - interval '1 second',
              expires_at = now() - interval '1 second' WHERE scope = $1`,
      [r.scope],
    );
    expect((await claimIdempotencyKey(db.pool, r, opts)).kind).toBe("claimed");
    await expect(claimIdempotencyKey(db.pool, r, opts)).rejects.toMatchObject({
      code: "request_in_progress",
    });
  });

  it("encrypts each stored response under an IV of its own, even for the same key (AES-GCM must never reuse one)", () => {
    const ivs = new Set(
      Array.from(
        { length: 4 },
        () =>
          (
            idempotencyCompletion(req, 201, { same: "response" }, { claim: true, ttlSeconds: 60 })
              .response as { iv: string }
          ).iv,
      ),
    );
    expect(ivs.size).toBe(4);
  });

  it("a duplicate waits for a claim with backoff: a handful of statements in 2 s, and it still sees the claim end", async () => {
    const r = { ...req, scope: "messages-post:backoff-test" };
    const first = await claimIdempotencyKey(db.pool, r, opts);
    if (first.kind !== "claimed") throw new Error("expected a claim");
    let statements = 0;
    const counting = {
      query: (...args: Parameters<TestDatabase["pool"]["query"]>) => {
        statements++;
        return db.pool.query(...args);
      },
    } as unknown as Queryable;
    await expect(claimIdempotencyKey(counting, r, { ...opts, waitMs: 2000 })).rejects.toMatchObject({
      code: "request_in_progress",
    });
    expect(statements).toBeGreaterThanOrEqual(8); // it kept looking throughout the wait…
    expect(statements).toBeLessThanOrEqual(24); // …without 80 polls of two statements each (25 ms apart)
    // the claim given back during a wait: the duplicate takes the key over at its next look
    const waiting = claimIdempotencyKey(db.pool, r, { ...opts, waitMs: 2000 });
    setTimeout(() => void releaseIdempotencyKey(db.pool, r, first.token), 300);
    expect((await waiting).kind).toBe("claimed");
  });

  it("outlives the request holding it: the lock covers each idempotent function's timeout and a last statement", () => {
    const cfg = parseConfig({});
    for (const name of ["sessions-create", "messages-post"]) {
      const fn = functions.find((f) => f.name === name);
      if (!fn) throw new Error(`no function ${name}`);
      expect(fn.timeoutSeconds + cfg.DB_STATEMENT_TIMEOUT_MS / 1000, name).toBeLessThanOrEqual(
        cfg.IDEMPOTENCY_LOCK_SECONDS,
      );
    }
  });

  it("a post that ran past its claim writes nothing once another request took the key over", async () => {
    const { id, key, auth } = await keyedSession("k-late-post");
    const hold = holdNextAnswer();
    const first = fx.chat.postMessage(await auth(), "hello", key);
    first.catch(() => {}); // asserted below
    await hold.reached;
    await expireClaims(fx.db.pool, key);
    // a retry takes the key over and is still answering: the session has not moved
    const retry = await claimIdempotencyKey(fx.db.pool, key, opts);
    if (retry.kind !== "claimed") throw new Error("expected the retry to take the key over");
    hold.release();
    await expect(first).rejects.toMatchObject({ code: "request_in_progress" });
    const turns = await fx.db.pool.query("SELECT count(*)::int AS n FROM messages WHERE session_id = $1", [
      id,
    ]);
    expect(turns.rows[0].n).toBe(1); // the welcome message only
    expect(await recordsOf(fx.db.pool, key)).toEqual([{ status: "in_progress", token: retry.token }]);
    await releaseIdempotencyKey(fx.db.pool, key, retry.token);
  });

  it("a post whose paid answer fails gives its claimed key back: no claim is left, and a retry with the key runs at once", async () => {
    const { id, key, auth } = await keyedSession("k-failed");
    const hold = holdNextAnswer();
    const first = fx.chat.postMessage(await auth(), "hello", key);
    first.catch(() => {}); // asserted below
    await hold.reached;
    // a costly responder is answering: its request holds a claim on the key
    expect(await recordsOf(fx.db.pool, key)).toMatchObject([{ status: "in_progress" }]);
    hold.failWith = new Error("the model is unavailable");
    hold.release();
    await expect(first).rejects.toThrow("the model is unavailable");
    // released, not left to block the key until its lock runs out (30 s)
    expect(await recordsOf(fx.db.pool, key)).toEqual([]);
    // a claim left behind would make the retry wait, then fail with request_in_progress
    const retry = await fx.chat.postMessage(await auth(), "hello", key);
    expect(retry.replayed).toBeUndefined();
    expect(await userTurns(id)).toEqual([retry.message.message_id]);
    expect(await recordsOf(fx.db.pool, key)).toMatchObject([{ status: "completed" }]);
  });

  it("a post that failed after its turn committed keeps its completed record: the retry replays that turn", async () => {
    const { id, key, auth } = await keyedSession("k-failed-late");
    // the claim comes first (a paid model), then the turn commits, then publishing it fails
    const failingPublisher = new ChatService({
      pool: fx.servicePool,
      cache: fx.cache,
      responder: slowFirstAnswer,
      config: fx.config,
      publisher: {
        usesBacklog: false,
        afterCommit: async () => {
          throw new Error("publish failed");
        },
      },
    });
    await expect(failingPublisher.postMessage(await auth(), "hello", key)).rejects.toThrow("publish failed");
    expect(await recordsOf(fx.db.pool, key)).toMatchObject([{ status: "completed" }]);
    const retry = await fx.chat.postMessage(await auth(), "hello", key);
    expect(retry.replayed).toBe(true);
    expect(await userTurns(id)).toEqual([retry.message.message_id]);
  });

  it("a post completing its claim names its messages: deleting its reply withdraws the replay", async () => {
    const { key, auth } = await keyedSession("k-withdrawn");
    const posted = await fx.chat.postMessage(await auth(), "hello", key);
    const replay = await fx.chat.postMessage(await auth(), "hello", key);
    expect(replay).toMatchObject({ replayed: true, reply: { message_id: posted.reply.message_id } });
    await fx.chat.deleteMessage(await auth(), posted.reply.message_id);
    await expect(fx.chat.postMessage(await auth(), "hello", key)).rejects.toMatchObject({
      code: "replay_withdrawn",
    });
    // the stored response, which holds the deleted reply's text, goes with the replay
    expect(await storedResponses(key)).toEqual([{ response: null }]);
  });

  it("editing a post's message withdraws its replay, and its stored response with the old text", async () => {
    const { key, auth } = await keyedSession("k-withdrawn-edit");
    const posted = await fx.chat.postMessage(await auth(), "hello", key);
    await fx.chat.editMessage(await auth(), { message_id: posted.message.message_id, content: "changed" });
    await expect(fx.chat.postMessage(await auth(), "hello", key)).rejects.toMatchObject({
      code: "replay_withdrawn",
    });
    expect(await storedResponses(key)).toEqual([{ response: null }]);
  });

  it("a post that ran past its claim, after the retry that took the key over posted: one turn, the retry's", async () => {
    const { id, key, auth } = await keyedSession("k-late-post-2");
    const hold = holdNextAnswer();
    const first = fx.chat.postMessage(await auth(), "hello", key);
    first.catch(() => {}); // asserted below
    await hold.reached;
    await expireClaims(fx.db.pool, key);
    const retry = await fx.chat.postMessage(await auth(), "hello", key);
    hold.release();
    await expect(first).rejects.toMatchObject({ code: "request_in_progress" });
    expect(await userTurns(id)).toEqual([retry.message.message_id]);
    const replay = await fx.chat.postMessage(await auth(), "hello", key);
    expect(replay).toMatchObject({ replayed: true, message: { message_id: retry.message.message_id } });
  });

  it("a change that takes its key in its own statement keeps the record for the TTL it was given", async () => {
    const key: IdempotencyRequest = { scope: "sessions-create:ttl-test", key: "k-ttl", requestHash: "h" };
    await insertBareSession(randomUUID(), {
      tokenHash: uniqueTokenHash(),
      idempotency: idempotencyCompletion(key, 201, {}, { claim: true, ttlSeconds: 7200 }),
    });
    const ttl = await db.pool.query(
      "SELECT status, extract(epoch FROM expires_at - locked_until)::int AS seconds FROM idempotency_records WHERE scope = $1",
      [key.scope],
    );
    expect(ttl.rows).toEqual([{ status: "completed", seconds: 7200 }]);
  });

  it("a create's key taken over once its record expired is no longer the old session's: erasing that one keeps the claim", async () => {
    const key: IdempotencyRequest = {
      scope: "sessions-create:expired-owner",
      key: "k-owner",
      requestHash: "h",
    };
    const created = await fx.chat.createSession({}, key);
    await fx.db.pool.query(
      "UPDATE idempotency_records SET expires_at = now() - interval '1 second' WHERE scope = $1",
      [key.scope],
    );
    const retry = await claimIdempotencyKey(fx.db.pool, key, opts);
    if (retry.kind !== "claimed") throw new Error("expected the retry to take the key over");
    await fx.chat.eraseSession(await fx.chat.authorize(created.session.session_id, created.token));
    expect(await recordsOf(fx.db.pool, key)).toEqual([{ status: "in_progress", token: retry.token }]);
    await releaseIdempotencyKey(fx.db.pool, key, retry.token);
  });

  it("a create completing a claim another request took over creates no session", async () => {
    const key: IdempotencyRequest = {
      scope: "sessions-create:claim-test",
      key: "k-late-create",
      requestHash: "h",
    };
    const first = await claimIdempotencyKey(db.pool, key, opts);
    if (first.kind !== "claimed") throw new Error("expected a claim");
    await expireClaims(db.pool, key);
    const retry = await claimIdempotencyKey(db.pool, key, opts);
    if (retry.kind !== "claimed") throw new Error("expected the retry to take the key over");
    const sessionId = randomUUID();
    const late = insertBareSession(sessionId, {
      idempotency: idempotencyCompletion(
        key,
        201,
        { late: true },
        {
          claim: false,
          token: first.token,
          ttlSeconds: 3600,
        },
      ),
    });
    await expect(late).rejects.toMatchObject({ code: "request_in_progress" });
    const left = await db.pool.query("SELECT count(*)::int AS n FROM sessions WHERE session_id = $1", [
      sessionId,
    ]);
    expect(left.rows[0].n).toBe(0);
    // the retry's claim is untouched: still in progress, still its token
    expect(await recordsOf(db.pool, key)).toEqual([{ status: "in_progress", token: retry.token }]);
  });

  it("a post completing its claim while its session is erased waits for the erase and finds the session gone: no deadlock", async () => {
    // the erase locks the session, then deletes its claims; the completion must take the two in the same order
    const sessionId = randomUUID();
    const at = new Date().toISOString();
    await insertBareSession(sessionId);
    const key: IdempotencyRequest = {
      scope: `messages-post:${sessionId}`,
      key: "k-erased",
      requestHash: "h",
    };
    const claim = await claimIdempotencyKey(db.pool, key, opts);
    if (claim.kind !== "claimed") throw new Error("expected a claim");
    const eraser = await db.pool.connect();
    try {
      await eraser.query("BEGIN");
      await eraser.query("SELECT 1 FROM sessions WHERE session_id = $1 FOR UPDATE", [sessionId]);
      const post = applySessionChange(db.pool, {
        sessionId,
        expectedGeneration: 1,
        at,
        lastSeq: 2,
        messageCountDelta: 1,
        inserts: [{ message_id: randomUUID(), seq: 2, role: "user", content: "x", reply_to: null }],
        events: [],
        idempotency: idempotencyCompletion(
          key,
          201,
          {},
          { claim: false, token: claim.token, ttlSeconds: 3600 },
        ),
      });
      post.catch(() => {}); // asserted below
      // the completion now waits on the session's row: only then is the erase's lock order what is tested
      await untilWaitingForLock(db.pool);
      const erased = chatEvent("chat.session.erased", sessionId, at, { session_id: sessionId });
      await eraser.query(ERASE, [sessionId, erased.id, JSON.stringify(erased), null]);
      await eraser.query("COMMIT");
      // null: the caller answers session_not_found, as for any change to a session that no longer exists
      await expect(post).resolves.toBeNull();
    } finally {
      eraser.release();
    }
  });

  it("a post completing its claim on a session another change moved on gets null (planned again), the claim still its own", async () => {
    const sessionId = randomUUID();
    await insertBareSession(sessionId, { tokenHash: uniqueTokenHash() }); // the session stays: a token of its own
    const key: IdempotencyRequest = { scope: `messages-post:${sessionId}`, key: "k-moved", requestHash: "h" };
    const claim = await claimIdempotencyKey(db.pool, key, opts);
    if (claim.kind !== "claimed") throw new Error("expected a claim");
    const stale = await applySessionChange(db.pool, {
      sessionId,
      expectedGeneration: 0, // the session is at 1: another change committed since this one was planned
      at: new Date().toISOString(),
      lastSeq: 2,
      messageCountDelta: 1,
      inserts: [{ message_id: randomUUID(), seq: 2, role: "user", content: "x", reply_to: null }],
      events: [],
      idempotency: idempotencyCompletion(
        key,
        201,
        {},
        { claim: false, token: claim.token, ttlSeconds: 3600 },
      ),
    });
    expect(stale).toBeNull();
    expect(await recordsOf(db.pool, key)).toEqual([{ status: "in_progress", token: claim.token }]);
  });

  /** A new session, and posts to it as the handler builds them: the body and its Idempotency-Key request. */
  async function postingSession() {
    const created = await fx.chat.createSession({});
    const id = created.session.session_id;
    const scope = `messages-post:${id}`;
    const body = (content: string) => ({ session_id: id, content });
    return {
      auth: () => fx.chat.authorize(id, created.token),
      scope,
      body,
      header: (key: string, content: string) =>
        idempotencyRequest({ "idempotency-key": key }, scope, body(content)) as IdempotencyRequest,
    };
  }

  it("stores the request's hash keyed by the Idempotency-Key: the table cannot confirm a guess of what a post said", async () => {
    const { auth, scope, body, header } = await postingSession();
    await fx.chat.postMessage(await auth(), "my secret", header("k-hashed", "my secret"));
    const stored = async () =>
      (await fx.db.pool.query("SELECT request_hash FROM idempotency_records WHERE scope = $1", [scope]))
        .rows[0].request_hash as string;
    const plain = legacyRequestHash(body("my secret")); // what a reader of the table could compute from a guess
    expect(await stored()).toMatch(/^[0-9a-f]{64}$/);
    expect(await stored()).not.toBe(plain);
    expect(await stored()).not.toBe(legacyRequestHash(body("my secret")).toUpperCase());
    // the same request under another key stores another hash
    const again = await fx.chat.postMessage(await auth(), "my secret", header("k-hashed-2", "my secret"));
    expect(again.replayed).toBeFalsy();
    const hashes = await fx.db.pool.query(
      "SELECT DISTINCT request_hash FROM idempotency_records WHERE scope = $1",
      [scope],
    );
    expect(hashes.rowCount).toBe(2);
    // a retry replays; another request with the key is refused
    expect(
      (await fx.chat.postMessage(await auth(), "my secret", header("k-hashed", "my secret"))).replayed,
    ).toBe(true);
    await expect(
      fx.chat.postMessage(await auth(), "other", header("k-hashed", "other")),
    ).rejects.toMatchObject({ code: "idempotency_key_reused" });
  });

  it("a record the previous release wrote (a plain hash) still replays its retry, and refuses another request", async () => {
    const session = await postingSession();
    const { auth, scope, body } = session;
    const header = (content: string) => session.header("k-legacy", content);
    const posted = await fx.chat.postMessage(
      await auth(),
      "before the upgrade",
      header("before the upgrade"),
    );
    const rewritten = await fx.db.pool.query(
      "UPDATE idempotency_records SET request_hash = $2 WHERE scope = $1",
      [scope, legacyRequestHash(body("before the upgrade"))],
    );
    expect(rewritten.rowCount).toBe(1);
    const replay = await fx.chat.postMessage(
      await auth(),
      "before the upgrade",
      header("before the upgrade"),
    );
    expect(replay).toMatchObject({ replayed: true, message: { message_id: posted.message.message_id } });
    await expect(fx.chat.postMessage(await auth(), "other", header("other"))).rejects.toMatchObject({
      code: "idempotency_key_reused",
    });
  });
});
