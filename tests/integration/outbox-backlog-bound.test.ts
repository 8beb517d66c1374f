import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CloudEvent } from "../../layers/chat/events/cloudevents.ts";
import { relayOutbox } from "../../layers/chat/events/outbox-relay.ts";
import { pendingBatch, pendingForSession } from "../../layers/chat/events/outbox-store.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * A request's fast path reads its session's backlog before publishing it, and the relay reads every session's.
 * After a Kafka outage a backlog of long messages can be many megabytes: each read takes a prefix of it, bounded
 * by bytes as well as by count, oldest first, so every session's order holds.
 */
let db: TestDatabase;
const SESSION = "00000000-0000-4000-8000-00000000b10c";
const COMPRESSIBLE = "00000000-0000-4000-8000-00000000c0de";

beforeAll(async () => {
  db = await createTestDatabase(2);
  // six unpublished events of ≈ 300 KB each, and one of another session
  await db.pool.query(
    `INSERT INTO outbox (event_id, session_id, event_type, event)
     SELECT id, CASE WHEN i <= 6 THEN $1::uuid ELSE gen_random_uuid() END, 'chat.message.created',
            jsonb_build_object('id', id, 'seq', i,
                               'content', (SELECT string_agg(md5(i::text || g::text), '') FROM generate_series(1, 9400) AS g))
       FROM (SELECT i, gen_random_uuid() AS id FROM generate_series(1, 7) AS i) AS e`,
    [SESSION],
  );
  // four events of 60,000 control characters: a few KB stored (compressed), 360 KB of JSON each
  await db.pool.query(
    `INSERT INTO outbox (event_id, session_id, event_type, event)
     SELECT id, $1, 'chat.message.created', jsonb_build_object('id', id, 'seq', i, 'content', repeat(chr(1), 60000))
       FROM (SELECT i, gen_random_uuid() AS id FROM generate_series(1, 4) AS i) AS e`,
    [COMPRESSIBLE],
  );
});
afterAll(() => db?.drop());

const seqs = (rows: { event: unknown }[]) => rows.map((r) => (r.event as { seq: number }).seq);

describe("the fast path's backlog read", () => {
  it("stops at the byte bound: a prefix of the backlog, oldest first, never empty", async () => {
    const size = await db.pool.query(
      "SELECT max(pg_column_size(event))::int AS n FROM outbox WHERE session_id = $1",
      [SESSION],
    );
    expect(size.rows[0].n).toBeGreaterThan(250_000);
    // events that start within 1 MB: the first four (0, ≈ 0.3, ≈ 0.6, ≈ 0.9 MB)
    expect(seqs(await pendingForSession(db.pool, SESSION, 1000, 1_000_000))).toEqual([1, 2, 3, 4]);
    // a bound smaller than one event still sends the oldest
    expect(seqs(await pendingForSession(db.pool, SESSION, 1000, 1000))).toEqual([1]);
    // a roomy bound: the whole backlog, and the count bound still holds
    expect(seqs(await pendingForSession(db.pool, SESSION, 1000, 100_000_000))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(seqs(await pendingForSession(db.pool, SESSION, 2, 100_000_000))).toEqual([1, 2]);
  });

  it("at a bound of exactly the first event's JSON, takes that event alone: the next one starts at the bound", async () => {
    const first = await db.pool.query(
      "SELECT octet_length(event::text) AS n FROM outbox WHERE session_id = $1 ORDER BY id LIMIT 1",
      [SESSION],
    );
    const bytes = Number(first.rows[0].n);
    expect(seqs(await pendingForSession(db.pool, SESSION, 1000, bytes))).toEqual([1]);
    expect(seqs(await pendingForSession(db.pool, SESSION, 1000, bytes + 1))).toEqual([1, 2]);
  });

  it("counts the events' JSON, not their compressed storage", async () => {
    const size = await db.pool.query(
      "SELECT max(pg_column_size(event))::int AS stored, max(octet_length(event::text))::int AS json FROM outbox WHERE session_id = $1",
      [COMPRESSIBLE],
    );
    expect(size.rows[0].stored).toBeLessThan(50_000);
    expect(size.rows[0].json).toBeGreaterThan(350_000);
    expect(seqs(await pendingForSession(db.pool, COMPRESSIBLE, 1000, 1_000_000))).toEqual([1, 2, 3]);
  });
});

describe("the relay's read", () => {
  // outbox order: 6 events of ≈ 300 KB (SESSION), 1 of ≈ 300 KB (another session), 4 compressible of 360 KB JSON
  // (each event carries its event_id as `id`, as every CloudEvent does: the relay marks by it)
  const allIds = async () =>
    (await db.pool.query("SELECT id FROM outbox ORDER BY id")).rows.map((r) => r.id as string);

  it("stops at the byte bound, never empty, and says whether more may follow", async () => {
    const first = await pendingBatch(db.pool, 500, 1_000_000);
    expect(seqs(first.rows)).toEqual([1, 2, 3, 4]);
    expect(first.more).toBe(true);
    expect(seqs((await pendingBatch(db.pool, 500, 1000)).rows)).toEqual([1]);
    const all = await pendingBatch(db.pool, 500, 100_000_000);
    expect(all.rows).toHaveLength(11);
    expect(all.more).toBe(false);
    // the count bound alone also says "more"
    expect(await pendingBatch(db.pool, 11, 100_000_000)).toMatchObject({ more: true });
  });

  it("at a bound the first two events fill exactly, takes those two and says more may follow", async () => {
    // the first two are stored uncompressed (hex text, more than pglz gains on): their size is what they take
    const two = await db.pool.query(
      `SELECT sum(pg_column_size(event))::int AS n, count(pg_column_compression(event))::int AS compressed
         FROM (SELECT event FROM outbox ORDER BY id LIMIT 2) e`,
    );
    expect(two.rows[0].compressed).toBe(0);
    const exact = await pendingBatch(db.pool, 500, two.rows[0].n);
    expect([seqs(exact.rows), exact.more]).toEqual([[1, 2], true]);
  });

  it("counts a compressed event by its JSON, leaving out the events in flight", async () => {
    const ids = await allIds();
    const rest = await pendingBatch(db.pool, 500, 1_000_000, ids.slice(0, 7));
    // three of the four 360 KB events start within 1 MB; by their few stored KB all four would
    expect(rest.rows.map((r) => r.id)).toEqual(ids.slice(7, 10));
    expect(rest.more).toBe(true);
  });

  it("a relay run publishes the whole backlog in byte-bounded batches, in order", async () => {
    const batches: number[][] = [];
    try {
      const run = await relayOutbox(
        db.pool,
        async (events: CloudEvent[]) => {
          batches.push(events.map((e) => (e as unknown as { seq: number }).seq));
        },
        { batchSize: 500, batchBytes: 1_000_000, timeBudgetMs: 30_000 },
      );
      expect(run).toMatchObject({ skipped: false, published: 11 });
      // (the seqs of SESSION, then of the other session, then of the compressible one)
      expect(batches).toEqual([
        [1, 2, 3, 4],
        [5, 6, 7, 1],
        [2, 3, 4],
      ]);
    } finally {
      await db.pool.query(
        "INSERT INTO outbox_pending (id, session_id) SELECT id, session_id FROM outbox ON CONFLICT DO NOTHING",
      );
    }
  });
});
