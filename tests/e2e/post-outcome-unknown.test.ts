import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FreezingProxy } from "../helpers/freezing-proxy.ts";
import {
  createSession,
  type RunnerBehindProxy,
  type RunnerFixture,
  runnerBehindFreezingProxy,
} from "../helpers/runner-fixture.ts";
import type { TestDatabase } from "../helpers/test-database.ts";

/**
 * A post whose change statement reached Postgres, and whose answer never came back (a connection gone silent, a
 * reply lost; through RDS Proxy, also a statement that waited to borrow a connection past the client's bound):
 * Postgres ran and committed it, the request gave up at its query bound and answered 503. A client that retries
 * that 503 without its Idempotency-Key posts the message twice, so the answer must say that the post may have been
 * made, and what makes a retry safe.
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

const userMessages = async (sessionId: string) =>
  (
    await db.pool.query<{ content: string }>(
      "SELECT content FROM messages WHERE session_id = $1 AND role = 'user' ORDER BY seq",
      [sessionId],
    )
  ).rows.map((r) => r.content);

describe("a post whose reply from Postgres is lost", () => {
  it("answers a 503 that says the post may have been made, and its retry with the key replays it", async () => {
    const s = await createSession(fx);
    const key = randomUUID();
    const send = () =>
      fx.call<{ code: string; detail: string }>("POST", "/messages/post", {
        json: { session_id: s.sessionId, content: "did this arrive?" },
        headers: { "idempotency-key": key },
        token: s.token,
      });
    const res = await proxy.during(
      () => proxy.freezeRepliesAfter("did this arrive?"),
      () => send(),
    );
    expect(res.status, res.text).toBe(503);
    expect(res.body.code).toBe("service_unavailable");
    expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    // Postgres did make it
    expect(await userMessages(s.sessionId)).toEqual(["did this arrive?"]);
    // ... which the answer must not hide behind "retry shortly": a retry without the key would post it again
    expect(res.body.detail).toMatch(/may have been (made|applied)/);
    expect(res.body.detail).toMatch(/Idempotency-Key/);

    const retry = await send();
    expect(retry.status, retry.text).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(await userMessages(s.sessionId)).toEqual(["did this arrive?"]);
  });

  it("a read right after that 503 shows the post, as the 503 tells the client to check before repeating it", async () => {
    const s = await createSession(fx);
    const history = async () =>
      (
        await fx.call<{ messages: { content: string }[] }>("GET", `/sessions/${s.sessionId}/messages`, {
          token: s.token,
        })
      ).body.messages.map((m) => m.content);
    expect(await history()).not.toContain("was this one made?"); // the session and its history now in the cache
    const res = await proxy.during(
      () => proxy.freezeRepliesAfter("was this one made?"),
      () =>
        fx.call("POST", "/messages/post", {
          json: { session_id: s.sessionId, content: "was this one made?" },
          token: s.token,
        }),
    );
    expect(res.status, res.text).toBe(503);
    expect(await userMessages(s.sessionId)).toEqual(["was this one made?"]);
    // a client without its key reads the session to decide: the cache's copy from before the post said "not made"
    expect(await history()).toContain("was this one made?");
  });

  it("so does one whose change went under the session's lock, and whose COMMIT was not answered", async () => {
    const s = await createSession(fx);
    const history = async () =>
      (
        await fx.call<{ messages: { content: string }[] }>("GET", `/sessions/${s.sessionId}/messages`, {
          token: s.token,
        })
      ).body.messages.map((m) => m.content);
    expect(await history()).not.toContain("and this one?");
    // a change the cache did not see (as one made while Redis was away from this instance): the post, planned from
    // the cached session, finds it moved and is applied again under the row lock, in a transaction
    await db.pool.query("UPDATE sessions SET generation = generation + 1 WHERE session_id = $1", [
      s.sessionId,
    ]);
    const res = await proxy.during(
      () => proxy.freezeRepliesAfter("COMMIT"),
      () =>
        fx.call<{ detail?: string }>("POST", "/messages/post", {
          json: { session_id: s.sessionId, content: "and this one?" },
          token: s.token,
        }),
    );
    expect(res.status, res.text).toBe(503);
    expect(res.body.detail).toMatch(/may have been made/);
    expect(await userMessages(s.sessionId)).toEqual(["and this one?"]);
    expect(await history()).toContain("and this one?");
  });
});
