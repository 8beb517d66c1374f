import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { CacheGuard } from "../../layers/chat/cache/cache-guard.ts";
import type { Queryable } from "../../layers/chat/db/chat-store.ts";
import { eraseSession } from "../../layers/chat/db/erase-store.ts";
import { buildPool } from "../../layers/chat/db/pool.ts";
import { chatEvent } from "../../layers/chat/events/cloudevents.ts";
import { runMaintenance } from "../../layers/chat/maintenance/maintenance.ts";
import { prune, pruneOutbox } from "../../layers/chat/maintenance/prune.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";
import { untilWaitingForLock } from "../helpers/lock-waits.ts";

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
    // the active session's two creation events: written two days ago, published since
    await f.db.pool.query(
      "UPDATE outbox SET created_at = now() - interval '48 hours' WHERE session_id = $1",
      [active.session.session_id],
    );
    await f.db.pool.query("DELETE FROM outbox_pending WHERE session_id = $1", [active.session.session_id]);
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

  it("a session posted to after a long idle time is no longer idle: the purge leaves it", async () => {
    const s = await f.chat.createSession({});
    const id = s.session.session_id;
    await f.db.pool.query(
      "UPDATE sessions SET updated_at = now() - interval '40 days' WHERE session_id = $1",
      [id],
    );
    await f.chat.postMessage(await f.chat.authorize(id, s.token), "back again");
    const row = await f.db.pool.query(
      "SELECT updated_at > now() - interval '1 day' AS recent FROM sessions WHERE session_id = $1",
      [id],
    );
    expect(row.rows).toEqual([{ recent: true }]);
    await runMaintenance(f.db.pool, f.cache, {
      outboxRetentionHours: 24,
      consumedEventsRetentionHours: 336,
      sessionRetentionDays: 30,
    });
    await expect(f.chat.authorize(id, s.token)).resolves.toBeDefined();
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

  it("forgets an erased session's activity row once its last event is past the consumed ids' retention, and only that", async () => {
    const rows = [
      { id: "00000000-0000-4000-8000-00000000a001", erased: true, hours: 337 }, // goes
      { id: "00000000-0000-4000-8000-00000000a002", erased: true, hours: 335 }, // late copies may still come
      { id: "00000000-0000-4000-8000-00000000a003", erased: false, hours: 2000 }, // a live session's
    ];
    for (const r of rows)
      await f.db.pool.query(
        `INSERT INTO session_activity (session_id, messages_created, erased, last_event_time)
         VALUES ($1, 3, $2, now() - make_interval(hours => $3))`,
        [r.id, r.erased, r.hours],
      );
    const result = await runMaintenance(f.db.pool, f.cache, {
      outboxRetentionHours: 24,
      consumedEventsRetentionHours: 336,
      sessionRetentionDays: 0,
    });
    expect(result.erasedActivityPruned).toBe(1);
    const left = await f.db.pool.query(
      "SELECT session_id FROM session_activity WHERE session_id = ANY($1) ORDER BY 1",
      [rows.map((r) => r.id)],
    );
    expect(left.rows.map((r) => r.session_id)).toEqual([rows[1]?.id, rows[2]?.id]);
  });

  it("leaves the retention purge half of its run however large the prunes' backlog", async () => {
    const idle = await f.chat.createSession({});
    await f.db.pool.query(
      "UPDATE sessions SET updated_at = now() - interval '40 days' WHERE session_id = $1",
      [idle.session.session_id],
    );
    // far more consumed ids past retention than one run can prune (after an upgrade from before they were pruned)
    await f.db.pool.query(
      `INSERT INTO consumed_events (event_id, consumed_at)
       SELECT gen_random_uuid(), now() - interval '400 hours' FROM generate_series(1, 150000)`,
    );
    try {
      const result = await runMaintenance(f.db.pool, f.cache, {
        outboxRetentionHours: 24,
        consumedEventsRetentionHours: 336,
        sessionRetentionDays: 30,
        pruneBatch: 100, // ≥ 1,500 statements: more than the whole run's time on any machine
        timeBudgetMs: 600,
      });
      expect(result.consumedEventsPruned).toBeLessThan(150000); // the prune stopped at its share
      expect(result.sessionsPurged).toBeGreaterThanOrEqual(1);
    } finally {
      await f.db.pool.query("TRUNCATE consumed_events");
    }
  });

  it("prunes a batch per statement and stops at its time budget; the next run goes on", async () => {
    // the outbox is walked oldest first and the walk ends at the first event newer than the retention: the
    // events of the tests before would end it here (written now, with smaller ids)
    await f.db.pool.query("TRUNCATE outbox");
    // 2,500 events written and published two days ago, next to one written now and one written two days ago
    // but still queued (Kafka was down): both of those stay
    const published = "00000000-0000-4000-8000-0000000000b1";
    const queued = "00000000-0000-4000-8000-0000000000b2";
    await f.db.pool.query(
      `INSERT INTO outbox (event_id, session_id, event_type, event, created_at)
       SELECT gen_random_uuid(), CASE WHEN i <= 2501 THEN $1 ELSE $2 END::uuid, 'chat.message.created', '{}'::jsonb,
              CASE WHEN i = 2501 THEN now() ELSE now() - interval '48 hours' END
       FROM generate_series(1, 2502) AS i`,
      [published, queued],
    );
    await f.db.pool.query("DELETE FROM outbox_pending WHERE session_id = $1", [published]);
    const opts = { outboxRetentionHours: 24, consumedEventsRetentionHours: 336, sessionRetentionDays: 0 };
    const spent = await runMaintenance(f.db.pool, f.cache, { ...opts, pruneBatch: 1000, timeBudgetMs: 0 });
    expect(spent.outboxPruned).toBe(1000);
    const next = await runMaintenance(f.db.pool, f.cache, { ...opts, pruneBatch: 1000 });
    expect(next.outboxPruned).toBe(1500);
    const left = await f.db.pool.query(
      `SELECT session_id::text, created_at > now() - interval '1 hour' AS recent,
              EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id) AS queued
         FROM outbox o WHERE session_id IN ($1, $2) ORDER BY id`,
      [published, queued],
    );
    expect(left.rows).toEqual([
      { session_id: published, recent: true, queued: false },
      { session_id: queued, recent: false, queued: true },
    ]);
  });

  it("the outbox walk takes its windows in id order, though updated events lie after newer ones in the table", async () => {
    await f.db.pool.query("TRUNCATE outbox");
    await f.db.pool.query(
      `INSERT INTO outbox (event_id, session_id, event_type, event, created_at, published_at)
       SELECT gen_random_uuid(), gen_random_uuid(), 'chat.message.created', jsonb_build_object('i', i),
              now() - interval '48 hours', now() - interval '47 hours'
         FROM generate_series(1, 20) AS i`,
    );
    // the five oldest are updated (as a delete redacts its message's events): their new versions come last
    await f.db.pool.query(
      "UPDATE outbox SET event = event || '{\"redacted\": true}' WHERE (event->>'i')::int <= 5",
    );
    expect(await pruneOutbox(f.db.pool, 24, { batch: 8, deadline: Date.now() + 60_000 })).toBe(20);
    const left = await f.db.pool.query("SELECT count(*)::int AS n FROM outbox");
    expect(left.rows[0].n).toBe(0);
  });

  it("the outbox walk goes on past a window that ends on a queued event, and reads each event once", async () => {
    // windows of 2 (events 1..6): [published, queued] [published, queued] [published, published]; a walk that
    // started its next window at the last one's end (>= instead of >) would read each queued event again
    await f.db.pool.query("TRUNCATE outbox");
    const session = "00000000-0000-4000-8000-0000000000c1";
    await f.db.pool.query(
      `INSERT INTO outbox (event_id, session_id, event_type, event, created_at)
       SELECT gen_random_uuid(), $1::uuid, 'chat.message.created', jsonb_build_object('i', i), now() - interval '48 hours'
         FROM generate_series(1, 6) AS i`,
      [session],
    );
    await f.db.pool.query(
      "DELETE FROM outbox_pending p USING outbox o WHERE p.id = o.id AND o.event->>'i' NOT IN ('2', '4')",
    );
    let read = 0;
    let statements = 0;
    const counting = {
      query: async (q: { name: string; text: string; values: unknown[] }) => {
        const res = await f.db.pool.query(q);
        statements++;
        read += res.rows[0].seen;
        return res;
      },
    } as unknown as Queryable;
    const pruned = await pruneOutbox(counting, 24, { batch: 2, deadline: Date.now() + 10_000 });
    expect(pruned).toBe(4);
    expect(read).toBe(6); // each event read once
    expect(statements).toBe(4); // three full windows, then an empty one
    const left = await f.db.pool.query(
      "SELECT event->>'i' AS i FROM outbox WHERE session_id = $1 ORDER BY id",
      [session],
    );
    expect(left.rows.map((r) => r.i)).toEqual(["2", "4"]);
    await f.db.pool.query("TRUNCATE outbox");
  });

  it("the outbox walk stops after the first window that holds an event the retention keeps", async () => {
    // windows of 2: [old, old] [new, old] [old, old] …: ids grow with time, so past a new event all are new in
    // practice; here the events after it are backdated to show the walk does not read on (its old neighbour in
    // the window goes, as the window is read whole)
    await f.db.pool.query("TRUNCATE outbox");
    const session = "00000000-0000-4000-8000-0000000000c2";
    await f.db.pool.query(
      `INSERT INTO outbox (event_id, session_id, event_type, event, created_at)
       SELECT gen_random_uuid(), $1::uuid, 'chat.message.created', jsonb_build_object('i', i),
              CASE WHEN i = 3 THEN now() ELSE now() - interval '48 hours' END
         FROM generate_series(1, 10) AS i`,
      [session],
    );
    await f.db.pool.query("DELETE FROM outbox_pending WHERE session_id = $1", [session]);
    let statements = 0;
    const counting = {
      query: async (q: { name: string; text: string; values: unknown[] }) => {
        statements++;
        return f.db.pool.query(q);
      },
    } as unknown as Queryable;
    expect(await pruneOutbox(counting, 24, { batch: 2, deadline: Date.now() + 10_000 })).toBe(3);
    expect(statements).toBe(2);
    const left = await f.db.pool.query("SELECT count(*)::int AS n FROM outbox WHERE session_id = $1", [
      session,
    ]);
    expect(left.rows[0].n).toBe(7);
    await f.db.pool.query("TRUNCATE outbox");
  });

  it("a prune goes on while its batches come back full, and drains the backlog in one run", async () => {
    await f.db.pool.query(
      `INSERT INTO idempotency_records (scope, idempotency_key, request_hash, status, locked_until, expires_at)
       SELECT 'messages-post:drain', 'k' || i, 'h', 'completed', now(), now() - interval '1 hour'
         FROM generate_series(1, 25) AS i`,
    );
    // 10, 10, then 5: the short batch ends the loop
    expect(
      await prune(f.db.pool, "idempotency", undefined, { batch: 10, deadline: Date.now() + 10_000 }),
    ).toBe(25);
    const left = await f.db.pool.query(
      "SELECT count(*)::int AS n FROM idempotency_records WHERE scope = 'messages-post:drain'",
    );
    expect(left.rows[0].n).toBe(0);
  });

  it("the outbox walk takes a quarter of the run at most: old events still queued leave the purge its time", async () => {
    // Kafka down for days: 20,000 events past the retention, all still queued, read one per statement
    await f.db.pool.query("TRUNCATE outbox");
    await f.db.pool.query(
      `INSERT INTO outbox (event_id, session_id, event_type, event, created_at)
       SELECT gen_random_uuid(), gen_random_uuid(), 'chat.message.created', '{}'::jsonb, now() - interval '48 hours'
         FROM generate_series(1, 20000)`,
    );
    const idle = await f.chat.createSession({});
    await f.db.pool.query(
      "UPDATE sessions SET updated_at = now() - interval '40 days' WHERE session_id = $1",
      [idle.session.session_id],
    );
    const started = Date.now();
    const result = await runMaintenance(f.db.pool, f.cache, {
      outboxRetentionHours: 24,
      consumedEventsRetentionHours: 336,
      sessionRetentionDays: 30,
      pruneBatch: 1,
      timeBudgetMs: 2000,
    });
    expect(Date.now() - started).toBeLessThan(20_000); // 20,000 statements would take far longer
    expect(result.outboxPruned).toBe(0);
    const left = await f.db.pool.query("SELECT count(*)::int AS n FROM sessions WHERE session_id = $1", [
      idle.session.session_id,
    ]);
    expect(left.rows[0].n).toBe(0); // purged
    await f.db.pool.query("TRUNCATE outbox");
  });

  it("the outbox walk stops once a quarter of the run's budget is gone, on the run's clock", async () => {
    await f.db.pool.query("TRUNCATE outbox");
    await f.db.pool.query(
      `INSERT INTO outbox (event_id, session_id, event_type, event, created_at, published_at)
       SELECT gen_random_uuid(), gen_random_uuid(), 'chat.message.created', '{}'::jsonb,
              now() - interval '48 hours', now() - interval '47 hours'
         FROM generate_series(1, 10)`,
    );
    const realNow = Date.now.bind(Date);
    let skew = 0;
    const clock = vi.spyOn(Date, "now").mockImplementation(() => realNow() + skew);
    // each window of the walk takes an eighth of the run's budget on that clock: a quarter is gone after two
    const pool = new Proxy(f.db.pool, {
      get(target, prop, receiver) {
        if (prop !== "query") return Reflect.get(target, prop, receiver);
        return async (q: unknown, ...rest: unknown[]) => {
          const res = await (target.query as (...a: unknown[]) => Promise<unknown>).call(target, q, ...rest);
          if (typeof q === "object" && (q as { name?: string }).name === "prune_outbox_window")
            skew += 10_000;
          return res;
        };
      },
    });
    try {
      const result = await runMaintenance(pool, null, {
        outboxRetentionHours: 24,
        consumedEventsRetentionHours: 336,
        sessionRetentionDays: 30,
        pruneBatch: 1,
        timeBudgetMs: 80_000,
      });
      expect(result.outboxPruned).toBe(2);
    } finally {
      clock.mockRestore();
      await f.db.pool.query("TRUNCATE outbox");
    }
  });

  it("the purge's erase tests idleness again: a session used since it was selected stays, with its events", async () => {
    const s = await f.chat.createSession({}); // updated just now
    const id = s.session.session_id;
    await f.chat.postMessage(await f.chat.authorize(id, s.token), "still here");
    const events = "SELECT event_type FROM outbox WHERE session_id = $1 ORDER BY id";
    const before = await f.db.pool.query(events, [id]);
    const event = chatEvent("chat.session.erased", id, new Date().toISOString(), { session_id: id });
    expect(await eraseSession(f.db.pool, id, event, 30)).toBe(false);
    await expect(f.chat.authorize(id, s.token)).resolves.toBeDefined();
    const after = await f.db.pool.query(events, [id]);
    expect(after.rows).toEqual(before.rows); // the created events with their text, and no erased event
    expect(after.rows.filter((r) => r.event_type === "chat.message.created")).toHaveLength(3);
  });

  it("a session whose erase fails is skipped; the run purges the others, batch after batch, and drains", async () => {
    const [locked, a, b] = [
      await f.chat.createSession({}),
      await f.chat.createSession({}),
      await f.chat.createSession({}),
    ];
    await f.db.pool.query(
      `UPDATE sessions SET updated_at = now() - make_interval(days => CASE WHEN session_id = $1 THEN 50 ELSE 40 END)
        WHERE session_id = ANY($2::uuid[])`,
      [locked.session.session_id, [locked, a, b].map((x) => x.session.session_id)],
    );
    const idle = await f.db.pool.query(
      "SELECT count(*)::int AS n FROM sessions WHERE updated_at < now() - interval '30 days'",
    );
    // a request holding the oldest session's row: its erase meets the lock timeout
    const holder = await f.db.pool.connect();
    const pool = buildPool(f.db.url, { ...f.config, SESSION_LOCK_TIMEOUT_MS: 200 });
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT 1 FROM sessions WHERE session_id = $1 FOR UPDATE", [
        locked.session.session_id,
      ]);
      const result = await runMaintenance(pool, f.cache, {
        outboxRetentionHours: 24,
        consumedEventsRetentionHours: 336,
        sessionRetentionDays: 30,
        purgeBatch: 1,
      });
      expect(result).toMatchObject({
        sessionsPurged: idle.rows[0].n - 1,
        sessionsFailed: 1,
        cacheInvalidationsDrained: true,
      });
    } finally {
      await holder.query("ROLLBACK");
      holder.release();
      await pool.end();
    }
    const left = await f.db.pool.query("SELECT session_id FROM sessions WHERE session_id = ANY($1::uuid[])", [
      [locked, a, b].map((x) => x.session.session_id),
    ]);
    expect(left.rows).toEqual([{ session_id: locked.session.session_id }]);
  });

  it("the idempotency prune keeps a key taken over while it waited for the row", async () => {
    await f.db.pool.query(
      `INSERT INTO idempotency_records (scope, idempotency_key, request_hash, status, locked_until, expires_at)
       VALUES ('messages-post:race', 'k', 'h', 'completed', now(), now() - interval '1 hour')`,
    );
    const taker = await f.db.pool.connect();
    try {
      await taker.query("BEGIN");
      await taker.query(
        "SELECT 1 FROM idempotency_records WHERE scope = 'messages-post:race' AND idempotency_key = 'k' FOR UPDATE",
      );
      const pruning = prune(f.db.pool, "idempotency", undefined, {
        batch: 1000,
        deadline: Date.now() + 10_000,
      });
      // the prune's DELETE has read the expired row and waits for its lock
      await untilWaitingForLock(f.db.pool, "DELETE FROM idempotency_records");
      // a new request takes the expired key over: a fresh claim on the same row
      await taker.query(
        `UPDATE idempotency_records SET status = 'in_progress', locked_until = now() + interval '15 seconds',
                expires_at = now() + interval '1 day'
          WHERE scope = 'messages-post:race' AND idempotency_key = 'k'`,
      );
      await taker.query("COMMIT");
      await pruning;
    } finally {
      taker.release();
    }
    const row = await f.db.pool.query(
      "SELECT status FROM idempotency_records WHERE scope = 'messages-post:race' AND idempotency_key = 'k'",
    );
    expect(row.rows).toEqual([{ status: "in_progress" }]);
  });

  describe("the retention purge, seen through the cache it tells of each erase", () => {
    const opts = { outboxRetentionHours: 24, consumedEventsRetentionHours: 336, sessionRetentionDays: 30 };
    /** New sessions idle this many days each, oldest first past any other test's idle sessions. */
    async function idleSessions(...days: number[]) {
      const ids: string[] = [];
      for (const d of days) {
        const s = await f.chat.createSession({});
        await f.db.pool.query(
          "UPDATE sessions SET updated_at = now() - make_interval(days => $2) WHERE session_id = $1",
          [s.session.session_id, d],
        );
        ids.push(s.session.session_id);
      }
      return ids;
    }
    const fakeCache = (
      afterErase: (id: string) => Promise<void>,
      drainInvalidations: () => Promise<boolean> = async () => true,
    ) => ({ afterErase, drainInvalidations }) as unknown as CacheGuard;
    const exists = async (id: string) =>
      (await f.db.pool.query("SELECT 1 FROM sessions WHERE session_id = $1", [id])).rowCount === 1;

    it("erases the oldest first, and tests each session's idleness again when its turn comes", async () => {
      const [a, b, c] = await idleSessions(3000, 2999, 2998);
      const erased: string[] = [];
      const cache = fakeCache(async (id) => {
        erased.push(id);
        // c, selected idle with a and b, is used before its erase
        if (id === a)
          await f.db.pool.query("UPDATE sessions SET updated_at = now() WHERE session_id = $1", [c]);
      });
      await runMaintenance(f.db.pool, cache, opts);
      expect(erased.filter((id) => [a, b, c].includes(id as string))).toEqual([a, b]);
      expect(await exists(c as string)).toBe(true);
    });

    it("stops between two erases of a batch once its time is up; the next run goes on", async () => {
      const [a, b] = await idleSessions(4000, 3999);
      const realNow = Date.now.bind(Date);
      let skew = 0;
      const clock = vi.spyOn(Date, "now").mockImplementation(() => realNow() + skew);
      try {
        // the first erase ends past the run's budget
        const cache = fakeCache(async () => {
          skew = 10 * 60_000;
        });
        const result = await runMaintenance(f.db.pool, cache, { ...opts, timeBudgetMs: 60_000 });
        expect(result.sessionsPurged).toBe(1);
      } finally {
        clock.mockRestore();
      }
      expect([await exists(a as string), await exists(b as string)]).toEqual([false, true]);
      await runMaintenance(f.db.pool, f.cache, opts);
      expect(await exists(b as string)).toBe(false);
    });

    it("reports a failed drain of the cache invalidations instead of failing the run", async () => {
      const cache = fakeCache(
        async () => {},
        async () => {
          throw new Error("redis is away");
        },
      );
      const result = await runMaintenance(f.db.pool, cache, opts);
      expect(result.cacheInvalidationsDrained).toBe(false);
    });
  });
});
