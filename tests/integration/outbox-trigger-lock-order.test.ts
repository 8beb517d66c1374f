import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { markPublished } from "../../layers/chat/events/outbox-store.ts";
import { untilWaitingForLock } from "../helpers/lock-waits.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * While both releases run, the previous release deletes (its erase) or updates (its marks) events, and the
 * outbox's triggers take their queue rows off the queue; this release's marks lock queue rows in id order. The
 * triggers followed their plan's order (a hash join over the queue's heap), which drifts from id order as the
 * queue churns: the two could each hold a queue row the other waited for.
 */
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(4);
});
afterAll(() => db?.drop());

const SESSION = "00000000-0000-4000-8000-0000000000aa";

describe("the outbox's triggers take queue rows in id order, as the marks do", () => {
  it.each([
    ["erase", "DELETE FROM outbox WHERE session_id = $1 AND published_at IS NULL"],
    ["mark", "UPDATE outbox SET published_at = now() WHERE session_id = $1 AND published_at IS NULL"],
  ])(
    "the previous release's %s and this release's mark of the same events both finish",
    async (_what, statement) => {
      // two queued events whose queue rows lie on the heap against their id order (the higher id first)
      await db.pool.query(
        `INSERT INTO outbox (id, event_id, session_id, event_type, event) VALUES
         (900002, gen_random_uuid(), $1, 'chat.message.created', '{}'),
         (900001, gen_random_uuid(), $1, 'chat.message.created', '{}')`,
        [SESSION],
      );
      const clients = Array.from({ length: 3 }, () => new pg.Client({ connectionString: db.url }));
      const [holder, previous, current] = clients as [pg.Client, pg.Client, pg.Client];
      await Promise.all(clients.map((c) => c.connect()));
      try {
        // something holds the higher queue row for a moment, so both statements are halfway when it lets go
        await holder.query("BEGIN");
        await holder.query("SELECT 1 FROM outbox_pending WHERE id = 900002 FOR UPDATE");
        // the trigger's plan over a queue of any length: a hash join, reading the queue in heap order
        await previous.query("SET enable_nestloop = off; SET enable_mergejoin = off");
        await previous.query("BEGIN");
        const old = previous.query(statement, [SESSION]);
        old.catch(() => {});
        await untilWaitingForLock(db.pool, "", 1);
        const mark = markPublished(current, ["900001", "900002"]);
        mark.catch(() => {});
        await untilWaitingForLock(db.pool, "", 2);
        await holder.query("COMMIT");
        await old; // a deadlock (40P01) here or in the mark when the trigger takes 900002 first
        await previous.query("COMMIT");
        await mark;
      } finally {
        for (const c of clients) {
          await c.query("ROLLBACK").catch(() => {});
          await c.end();
        }
        const queued = await db.pool.query("SELECT count(*)::int AS n FROM outbox_pending WHERE id > 900000");
        await db.pool.query("DELETE FROM outbox WHERE id > 900000"); // each case starts from the same two events
        expect(queued.rows[0].n).toBe(0);
      }
    },
  );
});
