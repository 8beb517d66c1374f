import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  OLDEST_PENDING_AGE,
  PENDING_BATCH,
  PENDING_BATCH_EXCLUDING,
} from "../../layers/chat/events/outbox-store.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * After a long Kafka outage the queue of unpublished events is a large share of the outbox, all of it after the
 * published events still retained. The relay's reads must start from the queue: ordered through the join, the
 * planner walked the outbox from its oldest event and probed the queue for each (1.2 M published events read per
 * relay batch on a year's data: 1.7–3 s). Rows read are counted from EXPLAIN ANALYZE, not timed.
 */
const PUBLISHED = 20_000;
const QUEUED = 24_000; // 55 % of the outbox: an outage about as long as the retention
const BATCH = 500;
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase(2);
  // the insert trigger queues every event written; the published ones are then taken off the queue, as marks do
  await db.pool.query(
    `INSERT INTO outbox (event_id, session_id, event_type, event, created_at)
     SELECT gen_random_uuid(), gen_random_uuid(), 'chat.message.created',
            jsonb_build_object('data', jsonb_build_object('content', repeat('x', 300), 'seq', i)),
            now() - make_interval(secs => ${PUBLISHED + QUEUED} - i)
       FROM generate_series(1, ${PUBLISHED + QUEUED}) AS i`,
  );
  await db.pool.query(
    `DELETE FROM outbox_pending WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ${PUBLISHED})`,
  );
  await db.pool.query("VACUUM ANALYZE outbox, outbox_pending");
});
afterAll(() => db?.drop());

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Actual Rows": number;
  "Actual Loops": number;
  "Rows Removed by Filter"?: number;
  Plans?: PlanNode[];
}

/** Rows the plan's scans of the outbox returned or read and dropped. */
function outboxRowsRead(node: PlanNode): number {
  const own =
    node["Relation Name"] === "outbox"
      ? node["Actual Rows"] * node["Actual Loops"] + (node["Rows Removed by Filter"] ?? 0)
      : 0;
  return own + (node.Plans ?? []).reduce((sum, child) => sum + outboxRowsRead(child), 0);
}

describe("the relay's reads start from the queue, however large a share of the outbox it is", () => {
  const reads = [
    ["the batch", PENDING_BATCH, [BATCH, 100_000_000]],
    ["the batch without events in flight", PENDING_BATCH_EXCLUDING, [BATCH, 100_000_000, ["1", "2"]]],
    ["the oldest event's age", OLDEST_PENDING_AGE, []],
  ] as const;
  // the relay runs them as named statements: Postgres may plan them for their parameters or generically
  for (const mode of ["force_custom_plan", "force_generic_plan"])
    for (const [what, sql, values] of reads)
      it(`${what} (${mode})`, async () => {
        const client = await db.pool.connect();
        try {
          await client.query("BEGIN");
          await client.query(`SET LOCAL plan_cache_mode = ${mode}`);
          const res = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, [...values]);
          const plan = res.rows[0]["QUERY PLAN"][0].Plan as PlanNode;
          // the batch's events (or the oldest one), each found by its id; none of the published ones before them
          expect(outboxRowsRead(plan)).toBeLessThanOrEqual(BATCH);
          const rows = await client.query(sql, [...values]);
          expect(rows.rowCount).toBe(values.length ? BATCH : 1);
        } finally {
          await client.query("ROLLBACK");
          client.release();
        }
      });
});
