import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMaintenance } from "../../layers/chat/maintenance/maintenance.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

let f: ChatFixture;
beforeAll(async () => {
  f = await chatFixture();
});
afterAll(() => f.close());

describe("maintenance", () => {
  it("purges sessions idle past the retention (with an erased event), prunes published events and expired idempotency records", async () => {
    const idle = await f.chat.createSession({});
    const active = await f.chat.createSession({});
    await f.chat.postMessage(await f.chat.authorize(idle.session.session_id, idle.token), "old news", {
      scope: `messages-post:${idle.session.session_id}`,
      key: "k1",
      requestHash: "h",
    });
    await f.db.pool.query(
      "UPDATE sessions SET updated_at = now() - interval '40 days' WHERE session_id = $1",
      [idle.session.session_id],
    );
    await f.db.pool.query(
      "UPDATE outbox SET published_at = now() - interval '48 hours' WHERE session_id = $1",
      [active.session.session_id],
    );
    await f.db.pool.query(
      `INSERT INTO idempotency_records (scope, idempotency_key, request_hash, status, locked_until, expires_at)
       VALUES ('sessions-create', 'expired', 'h', 'completed', now(), now() - interval '1 hour')`,
    );

    const result = await runMaintenance(f.db.pool, f.cache, {
      outboxRetentionHours: 24,
      consumedEventsRetentionHours: 336,
      sessionRetentionDays: 30,
    });

    expect(result).toMatchObject({ sessionsPurged: 1, outboxPruned: 2, idempotencyExpired: 1 });
    const left = await f.db.pool.query(
      `SELECT (SELECT count(*) FROM sessions WHERE session_id = $1)::int AS idle_sessions,
              (SELECT count(*) FROM messages WHERE session_id = $1)::int AS idle_messages,
              (SELECT array_agg(event_type) FROM outbox WHERE session_id = $1) AS idle_events,
              (SELECT count(*) FROM idempotency_records WHERE scope = 'messages-post:' || $1::text)::int AS idle_idem,
              (SELECT count(*) FROM sessions WHERE session_id = $2)::int AS active_sessions`,
      [idle.session.session_id, active.session.session_id],
    );
    expect(left.rows[0]).toEqual({
      idle_sessions: 0,
      idle_messages: 0,
      idle_events: ["chat.session.erased"],
      idle_idem: 0,
      active_sessions: 1,
    });
    await expect(f.chat.authorize(idle.session.session_id, idle.token)).rejects.toMatchObject({
      code: "unauthorized",
    });
  });

  it("purges nothing when retention is 0 (off)", async () => {
    const s = await f.chat.createSession({});
    await f.db.pool.query(
      "UPDATE sessions SET updated_at = now() - interval '400 days' WHERE session_id = $1",
      [s.session.session_id],
    );
    const result = await runMaintenance(f.db.pool, f.cache, {
      outboxRetentionHours: 24,
      consumedEventsRetentionHours: 336,
      sessionRetentionDays: 0,
    });
    expect(result.sessionsPurged).toBe(0);
    await expect(f.chat.authorize(s.session.session_id, s.token)).resolves.toBeDefined();
  });

  it("forgets consumed event ids past their retention, and only those", async () => {
    await f.db.pool.query(
      `INSERT INTO consumed_events (event_id, consumed_at)
       SELECT gen_random_uuid(), now() - make_interval(hours => h) FROM unnest(ARRAY[400, 337, 335, 1]) AS h`,
    );
    const before = await f.db.pool.query("SELECT count(*)::int AS n FROM consumed_events");
    const result = await runMaintenance(f.db.pool, f.cache, {
      outboxRetentionHours: 24,
      consumedEventsRetentionHours: 336,
      sessionRetentionDays: 0,
    });
    expect(result.consumedEventsPruned).toBe(2);
    const after = await f.db.pool.query(
      "SELECT count(*)::int AS n, max(now() - consumed_at) < interval '336 hours' AS all_recent FROM consumed_events",
    );
    expect(after.rows[0]).toEqual({ n: before.rows[0].n - 2, all_recent: true });
  });

  it("prunes a batch per statement and stops at its time budget; the next run goes on", async () => {
    // 2,500 events published two days ago, next to one published now, which stays
    await f.db.pool.query(
      `INSERT INTO outbox (event_id, session_id, event_type, event, published_at)
       SELECT gen_random_uuid(), gen_random_uuid(), 'chat.message.created', '{}'::jsonb,
              CASE WHEN i <= 2500 THEN now() - interval '48 hours' ELSE now() END
       FROM generate_series(1, 2501) AS i`,
    );
    const opts = { outboxRetentionHours: 24, consumedEventsRetentionHours: 336, sessionRetentionDays: 0 };
    const spent = await runMaintenance(f.db.pool, f.cache, { ...opts, pruneBatch: 1000, timeBudgetMs: 0 });
    expect(spent.outboxPruned).toBe(1000);
    const next = await runMaintenance(f.db.pool, f.cache, { ...opts, pruneBatch: 1000 });
    expect(next.outboxPruned).toBe(1500);
    const left = await f.db.pool.query(
      "SELECT count(*)::int AS n FROM outbox WHERE published_at < now() - interval '24 hours'",
    );
    expect(left.rows[0].n).toBe(0);
    expect(
      (
        await f.db.pool.query(
          "SELECT count(*)::int AS n FROM outbox WHERE published_at > now() - interval '1 hour'",
        )
      ).rows[0].n,
    ).toBeGreaterThanOrEqual(1);
  });
});
