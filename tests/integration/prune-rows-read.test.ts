import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PRUNE, type PruneTarget } from "../../layers/chat/maintenance/prune.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * A prune batch must read about the rows it deletes, not the backlog: the first version's `key IN (subquery)`
 * hash-joined each batch of 5,000 against every row past retention (312,000 expired idempotency records: 1–2 s a
 * batch), or scanned the whole table (consumed ids). Rows read are counted from EXPLAIN ANALYZE, not timed.
 */
const BATCH = 500;
const RETENTION_HOURS = 336;
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase(2);
  // backlogs 40 × the batch, next to rows that stay
  await db.pool.query(
    `INSERT INTO idempotency_records (scope, idempotency_key, request_hash, status, status_code, response,
                                      locked_until, expires_at)
     SELECT 'messages-post:' || (i % 1000), 'k' || i, 'h', 'completed', 201, '{}'::jsonb, now(),
            now() + CASE WHEN i <= 20000 THEN -1 ELSE 1 END * make_interval(secs => 60 + i)
       FROM generate_series(1, 25000) AS i`,
  );
  await db.pool.query(
    `INSERT INTO consumed_events (event_id, consumed_at)
     SELECT gen_random_uuid(), now() - make_interval(hours => CASE WHEN i <= 20000 THEN 400 ELSE 1 END, secs => i)
       FROM generate_series(1, 60000) AS i`,
  );
  await db.pool.query(
    `INSERT INTO session_activity (session_id, erased, last_event_time)
     SELECT gen_random_uuid(), i % 4 <> 0, now() - make_interval(hours => CASE WHEN i <= 26000 THEN 400 ELSE 1 END, secs => i)
       FROM generate_series(1, 30000) AS i`,
  );
  await db.pool.query("ANALYZE idempotency_records, consumed_events, session_activity");
});
afterAll(() => db?.drop());

interface PlanNode {
  "Node Type": string;
  "Actual Rows": number;
  "Actual Loops": number;
  "Rows Removed by Filter"?: number;
  "Rows Removed by Index Recheck"?: number;
  Plans?: PlanNode[];
}

/** Rows every scan of the plan returned or read and dropped. */
function rowsRead(node: PlanNode): number {
  const own = node["Node Type"].includes("Scan")
    ? node["Actual Rows"] * node["Actual Loops"] +
      (node["Rows Removed by Filter"] ?? 0) +
      (node["Rows Removed by Index Recheck"] ?? 0)
    : 0;
  return own + (node.Plans ?? []).reduce((sum, child) => sum + rowsRead(child), 0);
}

describe("a prune batch reads what it deletes, not the backlog", () => {
  // maintenance runs the prunes as named statements: Postgres may plan them for their parameters or generically
  for (const mode of ["force_custom_plan", "force_generic_plan"])
    for (const target of Object.keys(PRUNE) as PruneTarget[])
      it(`${target} (${mode})`, async () => {
        const client = await db.pool.connect();
        try {
          await client.query("BEGIN");
          await client.query(`SET LOCAL plan_cache_mode = ${mode}`);
          await client.query(`PREPARE batch AS ${PRUNE[target]}`);
          const args = target === "idempotency" ? `${BATCH}` : `${BATCH}, ${RETENTION_HOURS}`;
          const res = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE batch(${args})`);
          const plan = res.rows[0]["QUERY PLAN"][0].Plan as PlanNode;
          const deleted = await client.query(`EXECUTE batch(${args})`); // the next batch: a full one too
          expect(deleted.rowCount).toBe(BATCH);
          // the batch read from the age index, then each of its rows found again to delete (by its ctid, or by
          // its key: an index probe and a heap fetch), however long the backlog
          expect(rowsRead(plan)).toBeLessThanOrEqual(3 * BATCH);
        } finally {
          await client.query("ROLLBACK");
          await client.query("DEALLOCATE batch");
          client.release();
        }
      });

  it("each batch deletes the oldest rows past retention, and only those", async () => {
    const client = await db.pool.connect();
    try {
      await client.query("BEGIN");
      const oldest = `SELECT min(expires_at) AS idem,
                             (SELECT min(consumed_at) FROM consumed_events) AS consumed,
                             (SELECT min(last_event_time) FROM session_activity WHERE erased) AS activity
                        FROM idempotency_records`;
      const before = (await client.query(oldest)).rows[0];
      const rank = `SELECT (SELECT count(*) FROM idempotency_records WHERE expires_at < now())::int AS idem,
                           (SELECT count(*) FROM consumed_events WHERE consumed_at < now() - interval '336 hours')::int AS consumed,
                           (SELECT count(*) FROM session_activity
                             WHERE erased AND last_event_time < now() - interval '336 hours')::int AS activity`;
      const due = (await client.query(rank)).rows[0];
      for (const target of Object.keys(PRUNE) as PruneTarget[])
        await client.query(PRUNE[target], target === "idempotency" ? [BATCH] : [BATCH, RETENTION_HOURS]);
      expect((await client.query(rank)).rows[0]).toEqual({
        idem: due.idem - BATCH,
        consumed: due.consumed - BATCH,
        activity: due.activity - BATCH,
      });
      // seeded a second apart: the oldest left is the batch's size in seconds younger than the oldest before
      const after = (await client.query(oldest)).rows[0];
      for (const k of ["idem", "consumed", "activity"])
        expect((after[k].getTime() - before[k].getTime()) / 1000, k).toBeGreaterThanOrEqual(BATCH - 1);
    } finally {
      await client.query("ROLLBACK");
      client.release();
    }
  });
});
