import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pendingForSession } from "../../layers/chat/events/outbox-store.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * A request's fast path reads its session's backlog before publishing it. After a Kafka outage a session of
 * long messages can have a backlog of many megabytes: the read takes a prefix of it, bounded by bytes as well
 * as by count, oldest first, so the session's order holds.
 */
let db: TestDatabase;
const SESSION = "00000000-0000-4000-8000-00000000b10c";
const COMPRESSIBLE = "00000000-0000-4000-8000-00000000c0de";

beforeAll(async () => {
  db = await createTestDatabase(2);
  // six unpublished events of ≈ 300 KB each, and one of another session
  await db.pool.query(
    `INSERT INTO outbox (event_id, session_id, event_type, event)
     SELECT gen_random_uuid(), CASE WHEN i <= 6 THEN $1::uuid ELSE gen_random_uuid() END, 'chat.message.created',
            jsonb_build_object('seq', i, 'content', (SELECT string_agg(md5(i::text || g::text), '') FROM generate_series(1, 9400) AS g))
       FROM generate_series(1, 7) AS i`,
    [SESSION],
  );
  // four events of 60,000 control characters: a few KB stored (compressed), 360 KB of JSON each
  await db.pool.query(
    `INSERT INTO outbox (event_id, session_id, event_type, event)
     SELECT gen_random_uuid(), $1, 'chat.message.created', jsonb_build_object('seq', i, 'content', repeat(chr(1), 60000))
       FROM generate_series(1, 4) AS i`,
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
