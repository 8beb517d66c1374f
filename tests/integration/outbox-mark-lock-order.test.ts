import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { markEventsPublished, markPublished } from "../../layers/chat/events/outbox-store.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * The relay and a request's fast path can mark the same just-committed events at once (the relay read them from
 * the queue, the request sent its own). Each mark's delete took the queue rows in its plan's order: the relay's by
 * row id, the fast path's by event id (a long outbox's plans). Two marks of the same two events could then each
 * hold one and wait for the other: a deadlock (40P01), and a mark and its batch to do again.
 */
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(4);
});
afterAll(() => db?.drop());

/** Resolves once backend `pid` waits for a lock. */
async function untilWaiting(pid: number): Promise<void> {
  for (let i = 0; i <= 500; i++) {
    const r = await db.pool.query(
      "SELECT wait_event_type = 'Lock' AS waits FROM pg_stat_activity WHERE pid = $1",
      [pid],
    );
    if (r.rows[0]?.waits) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`backend ${pid} never waited for a lock`);
}

/** Two queued events whose row ids and event ids sort in opposite orders; returns their row ids. */
async function queueTwo(first: string, second: string): Promise<string[]> {
  const ids: string[] = [];
  for (const eventId of [first, second]) {
    const r = await db.pool.query(
      `INSERT INTO outbox (event_id, session_id, event_type, event)
       VALUES ($1, '00000000-0000-4000-8000-00000000f00d', 'chat.message.created', '{}') RETURNING id`,
      [eventId],
    );
    ids.push(r.rows[0].id);
  }
  return ids;
}

// the plans of a long outbox and queue (index scans, nested loops), which these few rows would not get
const LONG_OUTBOX_PLANS =
  "SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off";

describe("marks lock the queue rows they delete in one order", () => {
  it("the relay and a fast path marking the same two events both finish", async () => {
    // ids in one order, event ids in the other
    const first = "ffffffff-ffff-4fff-bfff-000000000001";
    const second = "00000000-0000-4000-8000-000000000002";
    const ids = await queueTwo(first, second);
    // Each delete of a queue row waits here, once it holds the row, until `staller` lets go: both marks are
    // then halfway, whatever the timing.
    await db.pool.query(`CREATE FUNCTION test_stall() RETURNS trigger LANGUAGE plpgsql AS $$
                         BEGIN PERFORM pg_advisory_xact_lock_shared(7312); RETURN OLD; END $$;
                         CREATE TRIGGER test_stall BEFORE DELETE ON outbox_pending FOR EACH ROW
                           EXECUTE FUNCTION test_stall()`);
    const clients = Array.from({ length: 3 }, () => new pg.Client({ connectionString: db.url }));
    const [staller, relay, request] = clients as [pg.Client, pg.Client, pg.Client];
    await Promise.all(clients.map((c) => c.connect()));
    try {
      await staller.query("SELECT pg_advisory_lock(7312)");
      for (const c of [relay, request]) await c.query(LONG_OUTBOX_PLANS);
      const pidOf = async (c: pg.Client) =>
        (await c.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
      const [relayPid, requestPid] = [await pidOf(relay), await pidOf(request)]; // asked before they are busy
      const fastPath = markEventsPublished(request, [first, second]);
      fastPath.catch(() => {}); // awaited below
      await untilWaiting(requestPid);
      const relayMark = markPublished(relay, ids);
      relayMark.catch(() => {}); // awaited below
      await untilWaiting(relayPid);
      await staller.query("SELECT pg_advisory_unlock(7312)");
      await expect(Promise.all([fastPath, relayMark])).resolves.toBeDefined();
    } finally {
      await staller.query("SELECT pg_advisory_unlock_all()").catch(() => {});
      await Promise.all(clients.map((c) => c.end()));
      await db.pool.query(
        "DROP TRIGGER IF EXISTS test_stall ON outbox_pending; DROP FUNCTION IF EXISTS test_stall()",
      );
    }
    const left = await db.pool.query(
      "SELECT count(*)::int AS n FROM outbox_pending WHERE id = ANY($1::bigint[])",
      [ids],
    );
    expect(left.rows[0].n).toBe(0);
  });
  it("while their locking is under way: the fast path waits for the row the relay took first, holding none", async () => {
    const first = "ffffffff-ffff-4fff-bfff-000000000003";
    const second = "00000000-0000-4000-8000-000000000004";
    const ids = await queueTwo(first, second);
    const clients = Array.from({ length: 2 }, () => new pg.Client({ connectionString: db.url }));
    const [relay, request] = clients as [pg.Client, pg.Client];
    await Promise.all(clients.map((c) => c.connect()));
    try {
      for (const c of [relay, request]) await c.query(LONG_OUTBOX_PLANS);
      const requestPid = (await request.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
      // the relay's mark halfway through its locking: it holds the first row (by id), not yet the second
      await relay.query("BEGIN");
      await relay.query("SELECT 1 FROM outbox_pending WHERE id = $1 FOR UPDATE", [ids[0]]);
      // in event-id order the fast path would take the second row, then wait for the first
      const fastPath = markEventsPublished(request, [first, second]);
      fastPath.catch(() => {}); // awaited below
      await untilWaiting(requestPid);
      // the relay goes on to the second row: free, unless the fast path took it
      const relayMark = markPublished(relay, ids).then(() => relay.query("COMMIT"));
      relayMark.catch(() => {}); // awaited below
      await expect(Promise.all([fastPath, relayMark])).resolves.toBeDefined();
    } finally {
      await relay.query("ROLLBACK").catch(() => {});
      await Promise.all(clients.map((c) => c.end()));
    }
    const left = await db.pool.query(
      "SELECT count(*)::int AS n FROM outbox_pending WHERE id = ANY($1::bigint[])",
      [ids],
    );
    expect(left.rows[0].n).toBe(0);
  });
});
