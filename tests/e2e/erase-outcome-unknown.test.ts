import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getCacheGuard, getChatService } from "../../layers/chat/chat-runtime.ts";
import { getPool } from "../../layers/chat/db/pool.ts";
import { eraseSessions } from "../../layers/chat/maintenance/maintenance.ts";
import type { FreezingProxy } from "../helpers/freezing-proxy.ts";
import {
  createSession,
  type RunnerBehindProxy,
  type RunnerFixture,
  runnerBehindFreezingProxy,
} from "../helpers/runner-fixture.ts";
import type { TestDatabase } from "../helpers/test-database.ts";

/**
 * An erase (DELETE /sessions/{id}) whose COMMIT reached Postgres, or may have, and whose answer never came back.
 * If it committed, the session's cache entries must not go on serving it to its token; if it did not, the session
 * must not be tombstoned (its user would be locked out of it); if no one can tell, the answer must say so.
 */
const STATEMENT_TIMEOUT_MS = 300;
let db: TestDatabase;
let proxy: FreezingProxy;
let fx: RunnerFixture;
let setup: RunnerBehindProxy | undefined;

beforeAll(async () => {
  setup = await runnerBehindFreezingProxy({ DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS) });
  ({ db, proxy, fx } = setup);
});
afterAll(() => setup?.close());

const stored = async (sessionId: string) =>
  (await db.pool.query("SELECT 1 FROM sessions WHERE session_id = $1", [sessionId])).rowCount;

/** A session whose entry the cache holds (read once, then served from Redis). */
async function cachedSession() {
  const s = await createSession(fx);
  await fx.call("GET", `/sessions/${s.sessionId}`, { token: s.token });
  const read = await fx.call("GET", `/sessions/${s.sessionId}/messages`, { token: s.token });
  expect(read.headers.get("x-cache")).toBe("hit");
  return s;
}

const erase = (s: { sessionId: string; token: string }, opts: { openapi?: boolean } = {}) =>
  fx.call<{ code?: string; detail?: string }>("DELETE", `/sessions/${s.sessionId}`, {
    token: s.token,
    ...opts,
  });
const read = (s: { sessionId: string; token: string }) =>
  fx.call("GET", `/sessions/${s.sessionId}`, { token: s.token });

describe("an erase whose COMMIT Postgres never answered", () => {
  it("that committed answers 204 and its session's token reads nothing more", async () => {
    const s = await cachedSession();
    const res = await proxy.during(
      () => proxy.freezeRepliesAfter("COMMIT", "connection"),
      () => erase(s),
    );
    expect(await stored(s.sessionId)).toBe(0);
    // a plain 503 ("retry shortly") before, and the cache went on serving the erased session to its token
    expect(res.status, res.text).toBe(204);
    expect((await read(s)).status).toBe(401);
  });

  it("that never reached Postgres answers the plain 503, and leaves the session to its user", async () => {
    const s = await cachedSession();
    const res = await proxy.during(
      () => proxy.dropRequestsFrom("COMMIT"),
      () => erase(s),
    );
    expect(res.status, res.text).toBe(503);
    expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    expect(res.body.detail).not.toMatch(/may have been/);
    expect(await stored(s.sessionId)).toBe(1);
    // not tombstoned: a tombstone written on the chance it committed would lock the user out of the session
    expect((await read(s)).status).toBe(200);
    expect((await erase(s)).status).toBe(204);
  });

  it("whose outcome cannot be checked says it may have been made, and what a retry answers", async () => {
    const s = await cachedSession();
    // Postgres silent for every connection until the answer: the check cannot be made either
    const res = await proxy.during(
      () => proxy.freezeRepliesAfter("COMMIT"),
      () => erase(s),
    );
    expect(res.status, res.text).toBe(503);
    expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    expect(await stored(s.sessionId)).toBe(0);
    expect(res.body.detail).toMatch(/may have been erased/);
    expect(res.body.detail).toMatch(/401/);
    // the cache's entries from before the erase are not served: the read goes to Postgres, which has no session
    expect((await read(s)).status).toBe(401);
    // the retry the 503 asks for: the token of the erased session is no longer valid, as the detail says
    expect((await erase(s)).status).toBe(401);
  });

  it("the operator's erase counts a session gone after it as done, and tombstones it", async () => {
    const s = await cachedSession();
    await getChatService(); // the runner's own cache guard and pool, through the proxy
    const result = await proxy.during(
      () => proxy.freezeRepliesAfter("COMMIT", "connection"),
      async () => eraseSessions(await getPool(), getCacheGuard(), [s.sessionId]),
    );
    expect(await stored(s.sessionId)).toBe(0);
    // listed as failed before, with the entries left for its token until the operator invoked it again
    expect(result.failed).toEqual([]);
    expect(result.erased + result.absent).toBe(1);
    expect((await read(s)).status).toBe(401);
  });
});

describe("at the default statement timeout", () => {
  beforeAll(async () => {
    await fx.reconfigure({ DB_STATEMENT_TIMEOUT_MS: "5000" });
  });

  it("an erase whose COMMIT went unanswered answers before its function's 10 s timeout", async () => {
    const s = await cachedSession();
    const res = await proxy.during(
      () => proxy.freezeRepliesAfter("COMMIT", "connection"),
      () => erase(s, { openapi: false }),
    );
    // 504 (the runner's function timeout; API Gateway's bare 500 in AWS) before: the COMMIT's 6 s bound, then as
    // long again for a ROLLBACK queued behind it on the same silent connection
    expect(res.status, res.text).toBe(204);
  });

  it("so does a delete applied under the session's lock, with the 503 that says it may have been made", async () => {
    const s = await cachedSession();
    const posted = await fx.call<{ message: { message_id: string } }>("POST", "/messages/post", {
      json: { session_id: s.sessionId, content: "delete me" },
      token: s.token,
    });
    expect(posted.status, posted.text).toBe(201);
    // a change the cache did not see: the delete, planned from the cached session, goes under the row lock
    await db.pool.query("UPDATE sessions SET generation = generation + 1 WHERE session_id = $1", [
      s.sessionId,
    ]);
    const res = await proxy.during(
      () => proxy.freezeRepliesAfter("COMMIT", "connection"),
      () =>
        fx.call<{ detail?: string }>("DELETE", "/messages/delete", {
          json: { session_id: s.sessionId, message_id: posted.body.message.message_id },
          token: s.token,
          openapi: false,
        }),
    );
    expect(res.status, res.text).toBe(503);
    expect(res.body.detail).toMatch(/may have been made/);
  });
});
