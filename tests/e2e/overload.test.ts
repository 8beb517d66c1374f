import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startLoad, summarize } from "../helpers/load.ts";
import {
  createSession,
  RUNNER_REDIS_URL,
  type RunnerFixture,
  startRunnerFixture,
} from "../helpers/runner-fixture.ts";

/**
 * Demand above what Postgres can serve in time, through the local runner: a pool of 2 connections, a statement
 * timeout of 500 ms, and a Postgres slowed by a test trigger that sleeps in every session update (each change's
 * statement). What a client gets must be an answer it can act on (2xx, 409 with Retry-After, or 503 with
 * Retry-After, each a problem document), never a 500 that says "do not retry", and never a hang; and an answer
 * that is not 201 must have posted nothing, so a retry without an Idempotency-Key cannot post twice.
 */
const STATEMENT_TIMEOUT_MS = 500;
const LOCK_TIMEOUT_MS = 300;
const POOL_MAX = 2;
let fx: RunnerFixture;

beforeAll(async () => {
  fx = await startRunnerFixture({
    env: {
      DB_POOL_MAX: String(POOL_MAX),
      DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
      SESSION_LOCK_TIMEOUT_MS: String(LOCK_TIMEOUT_MS),
    },
  });
  await fx.db.pool.query(`
    CREATE TABLE overload_delay (sleep_expr text NOT NULL);
    INSERT INTO overload_delay VALUES ('0');
    CREATE FUNCTION overload_slow() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE s float8;
      BEGIN
        EXECUTE 'SELECT ' || (SELECT sleep_expr FROM overload_delay) INTO s;
        PERFORM pg_sleep(s);
        RETURN NEW;
      END $$;
    CREATE TRIGGER overload_slow BEFORE UPDATE ON sessions FOR EACH ROW EXECUTE FUNCTION overload_slow();`);
});
afterEach(async () => {
  await slowBy("0");
});
afterAll(async () => {
  await fx?.close();
});

/** Seconds each session update sleeps: a SQL expression, evaluated per update (e.g. `random() * 0.8`). */
const slowBy = (sqlSeconds: string) =>
  fx.db.pool.query("UPDATE overload_delay SET sleep_expr = $1", [sqlSeconds]);

const userMessages = async (sessionId: string) =>
  (
    await fx.db.pool.query<{ message_id: string }>(
      "SELECT message_id FROM messages WHERE session_id = $1 AND role = 'user' ORDER BY seq",
      [sessionId],
    )
  ).rows.map((r) => r.message_id);

describe("a Postgres too slow for its statement timeout", () => {
  it("answers a post 503 service_unavailable with Retry-After, and posts nothing", async () => {
    const s = await createSession(fx);
    await slowBy(String((STATEMENT_TIMEOUT_MS * 2) / 1000));
    const res = await fx.call<{ code: string }>("POST", "/messages/post", {
      json: { session_id: s.sessionId, content: "are you there?" },
      token: s.token,
    });
    // Postgres cancelled the statement (57014): it rolled back, so 503 "retry" is the honest answer (it was a
    // 500 internal_error without Retry-After, which tells a client not to retry)
    expect(res.status, res.text).toBe(503);
    expect(res.contentType).toBe("application/problem+json");
    expect(res.body.code).toBe("service_unavailable");
    expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    // Postgres answered (with the cancellation): the post was not made, and the answer does not say it may have been
    expect((res.body as { detail?: string }).detail).not.toMatch(/may have been/);
    await slowBy("0");
    expect(await userMessages(s.sessionId)).toEqual([]);
    const retry = await fx.call("POST", "/messages/post", {
      json: { session_id: s.sessionId, content: "are you there?" },
      token: s.token,
    });
    expect(retry.status, retry.text).toBe(201);
    expect(await userMessages(s.sessionId)).toHaveLength(1);
  });

  it("posts at 12 times the pool: every answer is 201, or 409/503 with Retry-After; none hangs; none not 201 posted", async () => {
    const concurrency = POOL_MAX * 12;
    // a third of the updates outlast the statement timeout; the others hold a connection up to 0.75 s
    await slowBy(`random() * ${(STATEMENT_TIMEOUT_MS * 1.5) / 1000}`);
    const run = await startLoad<{ sessionId: string; token: string; acked: string[] }>({
      baseUrl: fx.url,
      concurrency,
      count: concurrency * 6,
      // past the post's function timeout (15 s): no answer by then is a hang
      timeoutMs: 20_000,
      init: async () => ({ ...(await createSession(fx)), acked: [] }),
      step: async ({ state, http }) => {
        const res = await http<{ message?: { message_id: string } }>("post", "POST", "/messages/post", {
          token: state.token,
          body: { session_id: state.sessionId, content: `turn ${randomUUID()}` },
          meta: { session: state.sessionId },
        });
        if (res.status === 201 && res.body.message) state.acked.push(res.body.message.message_id);
        if (res.status >= 400) res.record.meta = { ...res.record.meta, type: res.headers["content-type"] };
      },
    });
    const result = await run.done;
    await slowBy("0");
    const summary = summarize(result.records);
    expect(result.stepErrors).toEqual([]);

    const unexpected = result.records.filter(
      (r) =>
        !(
          r.status === 201 ||
          (r.status === 409 && r.code === "session_busy") ||
          (r.status === 503 && r.code === "service_unavailable")
        ),
    );
    expect(
      unexpected.map((r) => `${r.status} ${r.code ?? r.error ?? ""}`),
      JSON.stringify(summary),
    ).toEqual([]);
    const failed = result.records.filter((r) => r.status !== 201);
    // the load did meet the slow Postgres: some posts were refused
    expect(failed.length, JSON.stringify(summary)).toBeGreaterThan(0);
    for (const r of failed) {
      expect(r.meta?.type).toBe("application/problem+json");
      expect(r.retryAfter).toMatch(/^[1-9]\d*$/);
    }
    // nothing acknowledged is lost, and nothing refused was posted: each session holds exactly its 201s
    for (const state of result.states)
      expect(await userMessages(state.sessionId), state.sessionId).toEqual(state.acked);
  });

  it("answers a read that waited past the lock timeout (a migration's lock on a table) 503 with Retry-After", async () => {
    const s = await createSession(fx);
    const redis = new Redis(RUNNER_REDIS_URL);
    try {
      // not from the cache: the read goes to Postgres
      await redis.del(`chat:{${s.sessionId}}:s`, `chat:{${s.sessionId}}:h`);
    } finally {
      redis.disconnect();
    }
    const locker = await fx.db.pool.connect();
    let res: Awaited<ReturnType<typeof fx.call<{ code: string }>>>;
    try {
      await locker.query("BEGIN");
      // what ALTER TABLE takes: reads wait for it, up to the lock timeout (55P03)
      await locker.query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE");
      res = await fx.call<{ code: string }>("GET", `/sessions/${s.sessionId}/messages`, { token: s.token });
    } finally {
      await locker.query("ROLLBACK");
      locker.release();
    }
    // a 500 internal_error without Retry-After before: a client was told not to retry a read that a moment later works
    expect(res.status, res.text).toBe(503);
    expect(res.body.code).toBe("service_unavailable");
    expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    const again = await fx.call("GET", `/sessions/${s.sessionId}/messages`, { token: s.token });
    expect(again.status, again.text).toBe(200);
  });
});
