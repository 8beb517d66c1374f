import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERASE_PERSONAL_EVENTS, LOCK_EVENTS } from "../../layers/chat/db/erase-store.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * The statements that find a session's events by its messages' ids (an erase's, a delete's redaction) must be
 * costed by the session, not by the outbox: without statistics on the message id (a partial index's expression
 * has none), the planner guessed 0.5 % of the outbox per id, and on a year's data every erase statement passed
 * jit_above_cost and was compiled on each run. Estimates are read from EXPLAIN, after ANALYZE, not timed.
 */
const OTHER_EVENTS = 30_000;
const SESSION = "00000000-0000-4000-8000-00000000e001";
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase(2);
  await db.pool.query(
    `INSERT INTO sessions (session_id, token_hash, created_at, updated_at, last_seq, message_count)
     VALUES ($1, '\\x01', now(), now(), 20, 20)`,
    [SESSION],
  );
  await db.pool.query(
    `INSERT INTO messages (message_id, session_id, seq, role, content, created_at)
     SELECT gen_random_uuid(), $1, i, 'user', 'hello', now() FROM generate_series(1, 20) AS i`,
    [SESSION],
  );
  // the session's created events, and other sessions' messages' (one each), published (off the queue)
  await db.pool.query(
    `INSERT INTO outbox (event_id, session_id, event_type, event)
     SELECT gen_random_uuid(), session_id, 'chat.message.created',
            jsonb_build_object('data', jsonb_build_object('message_id', message_id, 'content', 'hello'))
       FROM (SELECT session_id, message_id FROM messages
             UNION ALL
             SELECT gen_random_uuid(), gen_random_uuid() FROM generate_series(1, ${OTHER_EVENTS})) AS m`,
  );
  await db.pool.query("DELETE FROM outbox_pending");
  await db.pool.query("ANALYZE outbox, outbox_pending, messages, sessions");
});
afterAll(() => db?.drop());

interface PlanNode {
  "Index Name"?: string;
  "Plan Rows": number;
  Plans?: PlanNode[];
}

/** The planner's row estimates of the plan's scans of outbox_message_idx. */
function byMessageIdEstimates(node: PlanNode): number[] {
  const own = node["Index Name"] === "outbox_message_idx" ? [node["Plan Rows"]] : [];
  return [...own, ...(node.Plans ?? []).flatMap(byMessageIdEstimates)];
}

async function estimates(mode: string, sql: string, values: unknown[]): Promise<number[]> {
  const client = await db.pool.connect();
  try {
    await client.query("BEGIN");
    await client.query(`SET LOCAL plan_cache_mode = ${mode}`);
    const res = await client.query(`EXPLAIN (FORMAT JSON) ${sql}`, values);
    return byMessageIdEstimates(res.rows[0]["QUERY PLAN"][0].Plan as PlanNode);
  } finally {
    await client.query("ROLLBACK");
    client.release();
  }
}

describe("the outbox's events of a message are estimated per message, not as a share of the outbox", () => {
  // the erase runs these as named statements: Postgres may plan them for their parameters or generically
  for (const mode of ["force_custom_plan", "force_generic_plan"]) {
    it(`an erase's statements, by its 20 messages' ids (${mode})`, async () => {
      for (const sql of [ERASE_PERSONAL_EVENTS, LOCK_EVENTS]) {
        const rows = await estimates(mode, sql, [SESSION]);
        expect(rows.length).toBeGreaterThan(0);
        // a few per message id; the guess was 0.5 % of the outbox per id (≈ 1,500 here for up to 10 ids)
        for (const n of rows) expect(n).toBeLessThanOrEqual(100);
      }
    });

    it(`a delete's redaction of its message's events (${mode})`, async () => {
      // the redaction's test on the message (chat-store.ts DELETE_MESSAGE), on its own
      const rows = await estimates(
        mode,
        `SELECT r.id FROM outbox AS r
          WHERE r.event_type IN ('chat.message.created', 'chat.message.edited')
            AND (r.event -> 'data' ->> 'message_id')::uuid = $1::uuid`,
        ["00000000-0000-4000-8000-00000000e002"],
      );
      expect(rows.length).toBe(1);
      expect(rows[0]).toBeLessThanOrEqual(10);
    });
  }
});
