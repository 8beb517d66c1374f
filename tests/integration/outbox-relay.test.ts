import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { CloudEvent } from "../../layers/chat/events/cloudevents.ts";
import { relayOutbox, relayReserveMs } from "../../layers/chat/events/outbox-relay.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

// The relay is pipelined (fetch n+1 while n is published, mark n while n+1 is published): these check that the
// overlap never reorders a session, never skips an event, and never marks what Kafka did not ack.
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(8);
});
afterAll(() => db.drop());
beforeEach(() => db.pool.query("TRUNCATE outbox"));

type Queryable = { query: (sql: string, values?: unknown[]) => Promise<unknown> };
const insertEvent = (q: Queryable, session: string, seq: number) => {
  const id = randomUUID();
  const event = { specversion: "1.0", id, type: "chat.message.created", subject: session, data: { seq } };
  return q.query("INSERT INTO outbox (event_id, session_id, event_type, event) VALUES ($1, $2, $3, $4)", [
    id,
    session,
    event.type,
    JSON.stringify(event),
  ]);
};
const seqOf = (e: CloudEvent) => (e.data as { seq: number }).seq;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The pool as a slow Postgres would make it: each named statement holds its connection `holdMs(name)` before it runs
 * (pool.query gives it back only once the statement is done).
 */
function holdingConnection(pool: pg.Pool, holdMs: (statement: string) => number): pg.Pool {
  return new Proxy(pool, {
    get(target, prop, receiver) {
      if (prop !== "query") return Reflect.get(target, prop, receiver);
      return async (query: { name?: string }, ...rest: unknown[]) => {
        const client = await target.connect();
        try {
          const ms = typeof query === "object" && query.name ? holdMs(query.name) : 0;
          if (ms > 0) await sleep(ms);
          return await (client.query as (...a: unknown[]) => Promise<unknown>).call(client, query, ...rest);
        } finally {
          client.release();
        }
      };
    },
  });
}

describe("the relay's overlap of Postgres and Kafka", () => {
  it("sends the next batch's fetch to Postgres before it starts publishing a batch", async () => {
    for (let seq = 1; seq <= 10; seq++)
      await insertEvent(db.pool, "00000000-0000-4000-8000-00000000f00d", seq);
    const pool = new pg.Pool({ connectionString: db.url, max: 4 });
    try {
      // idle connections, as a warm relay has: the pool hands one out on the next tick, not after a connect
      await Promise.all([1, 2, 3].map(() => pool.query("SELECT 1")));
      let checkouts = 0;
      pool.on("acquire", () => checkouts++);
      const atPublish: number[] = [];
      const run = await relayOutbox(
        pool,
        async () => {
          atPublish.push(checkouts);
          await sleep(5);
        },
        { batchSize: 5, batchBytes: 1_000_000, timeBudgetMs: 10_000 },
      );
      expect(run).toMatchObject({ published: 10, batches: 2 });
      // the first publish starts after the lock's connection, the first fetch's and the next fetch's were taken:
      // a publish that started first (its encoding holds the event loop) made the next fetch wait for it
      expect(atPublish[0]).toBe(3);
    } finally {
      await pool.end();
    }
  });
});

/** Per session, the seqs in the order they were first published. */
function firstCopiesBySession(published: CloudEvent[]): Map<string, number[]> {
  const seen = new Set<string>();
  const out = new Map<string, number[]>();
  for (const e of published) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    const list = out.get(e.subject as string) ?? [];
    list.push(seqOf(e));
    out.set(e.subject as string, list);
  }
  return out;
}

describe("pipelined outbox relay", () => {
  it("publishes every event once, each session in order, while writers keep adding", async () => {
    const sessions: string[] = Array.from({ length: 8 }, () => randomUUID());
    const written = new Map<string, number>();
    const write = async (s: string) => {
      const seq = (written.get(s) ?? 0) + 1;
      written.set(s, seq);
      await insertEvent(db.pool, s, seq);
    };
    for (let i = 0; i < 12; i++) for (const s of sessions) await write(s);
    const published: CloudEvent[] = [];
    const publish = async (events: CloudEvent[]) => {
      await sleep(2); // a broker round trip: the next fetch and the last mark run meanwhile
      published.push(...events);
    };
    let writing = true;
    const writers = Promise.all(
      sessions.map(async (s) => {
        for (let i = 0; i < 25; i++) {
          await write(s);
          await sleep(Math.random() * 3);
        }
      }),
    ).finally(() => {
      writing = false;
    });
    let runs = 0;
    for (;;) {
      const stillWriting = writing;
      const r = await relayOutbox(db.pool, publish, {
        batchSize: 7,
        batchBytes: 1_000_000,
        timeBudgetMs: 10_000,
      });
      runs++;
      expect(r.error).toBeUndefined();
      if (!stillWriting && r.published === 0) break;
    }
    await writers;
    expect(runs).toBeGreaterThan(1);
    const ids = published.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length); // no failure, so no duplicate either
    const bySession = firstCopiesBySession(published);
    for (const s of sessions) expect(bySession.get(s)).toEqual(Array.from({ length: 37 }, (_, i) => i + 1));
    const left = await db.pool.query("SELECT count(*)::int AS n FROM outbox_pending");
    expect(left.rows[0].n).toBe(0);
  });

  it("an event that commits late with an older id goes out before its session's later events", async () => {
    const s = randomUUID();
    const other = randomUUID();
    for (let i = 1; i <= 10; i++) await insertEvent(db.pool, other, i);
    // session s's first event takes its id now and commits only while the relay publishes its first batch,
    // when the relay has already read past that id (the first batch skipped it: not committed yet)
    const late = await db.pool.connect();
    await late.query("BEGIN");
    await insertEvent(late, s, 1);
    for (let i = 11; i <= 30; i++) await insertEvent(db.pool, other, i);
    const published: CloudEvent[] = [];
    let batch = 0;
    const publish = async (events: CloudEvent[]) => {
      batch++;
      if (batch === 1) {
        expect(events.map((e) => e.subject)).not.toContain(s);
        await late.query("COMMIT"); // s's first event is visible now, behind the relay's position…
        late.release();
        await insertEvent(db.pool, s, 2); // …and its second one lands ahead of it
      }
      await sleep(2);
      published.push(...events);
    };
    for (let run = 0; run < 5; run++) {
      const r = await relayOutbox(db.pool, publish, {
        batchSize: 12,
        batchBytes: 1_000_000,
        timeBudgetMs: 10_000,
      });
      expect(r.error).toBeUndefined();
      if (r.published === 0) break;
    }
    const bySession = firstCopiesBySession(published);
    expect(bySession.get(s)).toEqual([1, 2]);
    expect(bySession.get(other)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  });

  it("a failed publish leaves its batch, and every batch fetched after it, unmarked", async () => {
    const s = randomUUID();
    for (let i = 1; i <= 30; i++) await insertEvent(db.pool, s, i);
    let calls = 0;
    const r = await relayOutbox(
      db.pool,
      async () => {
        calls++;
        await sleep(2);
        if (calls === 3) throw new Error("broker went away");
      },
      { batchSize: 5, batchBytes: 1_000_000, timeBudgetMs: 10_000 },
    );
    expect(r).toMatchObject({ skipped: false, published: 10, batches: 2, error: "broker went away" });
    const marked = await db.pool.query(
      `SELECT (event->'data'->>'seq')::int AS seq FROM outbox o
        WHERE NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id) ORDER BY id`,
    );
    expect(marked.rows.map((x) => x.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
  });

  it("a failed publish ends the run only once the batch before it is marked", async () => {
    const s = randomUUID();
    for (let i = 1; i <= 3; i++) await insertEvent(db.pool, s, i);
    // the first batch's mark is slow (a busy Postgres) while the second batch's publish fails at once
    const slowMark = holdingConnection(db.pool, (name) => (name === "outbox_mark_published" ? 300 : 0));
    let calls = 0;
    const r = await relayOutbox(
      slowMark,
      async () => {
        if (++calls === 2) throw new Error("broker went away");
      },
      { batchSize: 1, batchBytes: 1_000_000, timeBudgetMs: 10_000 },
    );
    expect(r).toMatchObject({ published: 1, batches: 1, error: "broker went away" });
    const left = await db.pool.query(
      "SELECT (o.event->'data'->>'seq')::int AS seq FROM outbox_pending p JOIN outbox o ON o.id = p.id ORDER BY p.id",
    );
    expect(left.rows.map((x) => x.seq)).toEqual([2, 3]);
  });

  it("skips its run while another relay holds the lock: two would reorder sessions", async () => {
    await insertEvent(db.pool, randomUUID(), 1);
    const other = await db.pool.connect();
    try {
      // the lock another relay process takes (pg_try_advisory_lock on "chat")
      await other.query("SELECT pg_advisory_lock($1)", [0x63686174]);
      let calls = 0;
      const r = await relayOutbox(
        db.pool,
        async () => {
          calls++;
        },
        { batchSize: 10, batchBytes: 1_000_000, timeBudgetMs: 10_000 },
      );
      expect([r, calls]).toEqual([{ skipped: true, published: 0, batches: 0 }, 0]);
    } finally {
      await other.query("SELECT pg_advisory_unlock_all()");
      other.release();
    }
    const after = await relayOutbox(db.pool, async () => {}, {
      batchSize: 10,
      batchBytes: 1_000_000,
      timeBudgetMs: 10_000,
    });
    expect(after).toMatchObject({ skipped: false, published: 1 });
  });

  it("a failed mark ends the run with an error, never an unhandled rejection; the next run publishes it again", async () => {
    const s = randomUUID();
    for (let i = 1; i <= 20; i++) await insertEvent(db.pool, s, i);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    // the second mark fails (as a statement timeout or a lost connection would) while batch 3 is published
    let marks = 0;
    const flaky = new Proxy(db.pool, {
      get(target, prop, receiver) {
        if (prop !== "query") return Reflect.get(target, prop, receiver);
        return (q: { name?: string }, ...rest: unknown[]) => {
          if (typeof q === "object" && q.name === "outbox_mark_published" && ++marks === 2)
            return Promise.reject(new Error("mark failed"));
          return (target.query as (...a: unknown[]) => Promise<unknown>).call(target, q, ...rest);
        };
      },
    });
    const published: CloudEvent[] = [];
    const publish = async (events: CloudEvent[]) => {
      published.push(...events);
      await sleep(20);
    };
    try {
      const r = await relayOutbox(flaky, publish, {
        batchSize: 5,
        batchBytes: 1_000_000,
        timeBudgetMs: 10_000,
      });
      expect(r.error).toBe("mark failed");
      await sleep(50);
      expect(unhandled).toEqual([]);
      const again = await relayOutbox(db.pool, publish, {
        batchSize: 5,
        batchBytes: 1_000_000,
        timeBudgetMs: 10_000,
      });
      expect(again.error).toBeUndefined();
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
    expect(firstCopiesBySession(published).get(s)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const left = await db.pool.query("SELECT count(*)::int AS n FROM outbox_pending");
    expect(left.rows[0].n).toBe(0);
  });

  it("publishes nothing past its time budget, and gives each publish at most the time left", async () => {
    const s = randomUUID();
    for (let i = 1; i <= 40; i++) await insertEvent(db.pool, s, i);
    const timeouts: number[] = [];
    const starts: number[] = [];
    const started = Date.now();
    const r = await relayOutbox(
      db.pool,
      async (_events, timeoutMs) => {
        starts.push(Date.now() - started);
        timeouts.push(timeoutMs);
        await sleep(60);
      },
      { batchSize: 5, batchBytes: 1_000_000, timeBudgetMs: 200, maxPublishMs: 1000 },
    );
    expect(r.error).toBeUndefined();
    expect(r.batches).toBeGreaterThanOrEqual(1);
    expect(r.batches).toBeLessThan(8); // 40 events in batches of 5 would be 8
    // no publish starts after the deadline, and none is allowed to run past it
    for (const [i, start] of starts.entries()) {
      expect(start).toBeLessThan(200 + 20);
      expect(start + (timeouts[i] as number)).toBeLessThanOrEqual(200 + 20);
    }
    const left = await db.pool.query("SELECT count(*)::int AS n FROM outbox_pending");
    expect(left.rows[0].n).toBe(40 - r.published);
  });

  it("after its budget waits for no more than its reserve: the fetch in flight and two marks, each at its bound", async () => {
    const s = randomUUID();
    for (let i = 1; i <= 40; i++) await insertEvent(db.pool, s, i);
    // The functions' pool: the lock's connection and one more, so fetches and marks queue for it. Each fetch and
    // mark holds that connection for a whole statement bound (q); the second publish ends at the deadline.
    const q = 1000;
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    const slow = holdingConnection(pool, (name) => (name.startsWith("outbox_") ? q : 0));
    // fetch 1 ends at q; fetch 2 (q..2q) runs while publish 1 returns at once, mark 1 queues behind it (2q..3q);
    // publish 2 runs to the deadline (2q + 400) while fetch 3 queues behind mark 1 (3q..4q), and mark 2 behind
    // fetch 3 (4q..5q): the run ends ≈ 3q − 400 after its budget.
    const budgetMs = 2 * q + 400;
    let publishes = 0;
    const started = Date.now();
    try {
      const r = await relayOutbox(
        slow,
        async (_e, timeoutMs) => {
          if (++publishes > 1) await sleep(timeoutMs);
        },
        { batchSize: 5, batchBytes: 1_000_000, timeBudgetMs: budgetMs },
      );
      const tail = Date.now() - started - budgetMs;
      expect(r).toMatchObject({ published: 10, batches: 2 });
      expect(r.error).toBeUndefined();
      expect(tail).toBeGreaterThan(2.5 * q); // three statements after the deadline: the worst case was reached
      expect(tail).toBeLessThan(relayReserveMs({ queryTimeoutMs: q, connectTimeoutMs: 0 }));
    } finally {
      await pool.end();
    }
  });

  it("with the functions' pool (the lock's connection and one more) drains a backlog whose fetches outlast the connect timeout", async () => {
    for (let s = 0; s < 6; s++) {
      const session = randomUUID();
      for (let i = 1; i <= 5; i++) await insertEvent(db.pool, session, i);
    }
    // pg-pool's connect timeout also bounds the wait for a free connection; each fetch holds the one shared
    // connection three times that long (a slow Postgres), well within the statement bounds
    const pool = new pg.Pool({ connectionString: db.url, max: 2, connectionTimeoutMillis: 200 });
    const slow = holdingConnection(pool, (name) => (name.startsWith("outbox_pending_batch") ? 600 : 0));
    try {
      const r = await relayOutbox(slow, async () => {}, {
        batchSize: 10,
        batchBytes: 1_000_000,
        timeBudgetMs: 20_000,
      });
      expect(r.error).toBeUndefined();
      expect(r).toMatchObject({ published: 30, batches: 3 });
      const left = await db.pool.query("SELECT count(*)::int AS n FROM outbox_pending");
      expect(left.rows[0].n).toBe(0);
    } finally {
      await pool.end();
    }
  });

  it("refuses a one-connection pool at once instead of waiting for a connection it holds itself", async () => {
    const tiny = new pg.Pool({ connectionString: db.url, max: 1, connectionTimeoutMillis: 2000 });
    try {
      await expect(
        relayOutbox(tiny, async () => {}, { batchSize: 10, batchBytes: 1_000_000, timeBudgetMs: 1000 }),
      ).rejects.toThrow(/at least 2 connections \(DB_POOL_MAX is 1\)/);
    } finally {
      await tiny.end();
    }
  });
});
