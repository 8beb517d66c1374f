import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pruneOutbox } from "../../layers/chat/maintenance/prune.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * A delete redacts its message's created and edited events in the outbox; the hourly prune deletes old published
 * events, locking them in id order. A redaction that locked its rows in their physical order (an index or heap
 * scan) could hold a later event while waiting for an earlier one the prune held, while the prune waited for the
 * later one: a deadlock (40P01), and the user's delete answered 500.
 */
let f: ChatFixture;
beforeAll(async () => {
  f = await chatFixture({ redisUrl: null });
});
afterAll(() => f?.close());

async function waitingOnLock(match: string): Promise<void> {
  for (let i = 0; i <= 500; i++) {
    const r = await f.db.pool.query(
      "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
      [`%${match}%`],
    );
    if (r.rowCount) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no statement like ${match} waited for a lock`);
}

// The prune's plans: a long outbox's walks the window by id (index scans, nested loops); a small outbox's, once
// the prepared statement's plan is generic, hash-joins the window against a heap scan, which meets rows in heap order.
const PLANS = {
  "a long outbox's plans":
    "SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off",
  "a small outbox's plans":
    "SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off; SET enable_nestloop = off; SET enable_mergejoin = off",
};

describe("a delete's redaction and the outbox prune", () => {
  it.each(Object.entries(PLANS))(
    "lock the same events in one order under %s: both finish",
    async (_, plan) => {
      const created = await f.chat.createSession({ user_id: "u1" });
      const auth = () => f.chat.authorize(created.session.session_id, created.token);
      const posted = await f.chat.postMessage(await auth(), "soon deleted");
      const messageId = posted.message.message_id;
      await f.chat.editMessage(await auth(), { message_id: messageId, content: "soon deleted, edited" });
      // Published and past the retention: the prune's to delete.
      await f.db.pool.query(
        "DELETE FROM outbox_pending WHERE id IN (SELECT id FROM outbox WHERE session_id = $1)",
        [created.session.session_id],
      );
      await f.db.pool.query(
        "UPDATE outbox SET created_at = now() - interval '48 hours' WHERE session_id = $1",
        [created.session.session_id],
      );
      const ids = (
        await f.db.pool.query(`SELECT id, event_type FROM outbox WHERE session_id = $1 ORDER BY id`, [
          created.session.session_id,
        ])
      ).rows as { id: string; event_type: string }[];
      const mine = (
        await f.db.pool.query(
          `SELECT id FROM outbox WHERE (event->'data'->>'message_id')::uuid = $1
            AND event_type IN ('chat.message.created', 'chat.message.edited') ORDER BY id`,
          [messageId],
        )
      ).rows.map((r) => r.id as string);
      const [first, last] = [mine[0], mine[mine.length - 1]];
      if (!first || !last || mine.length !== 2) throw new Error("expected a created and an edited event");
      // an event between them that is not the message's (the bot's reply): held by someone else for a while
      const between = ids.find((r) => BigInt(r.id) > BigInt(first) && BigInt(r.id) < BigInt(last))?.id;
      if (!between) throw new Error("expected an event between the message's two");
      // Heap order last, between, first, as updates and reused space leave rows in a long-lived outbox: the table
      // rewritten (CLUSTER) in that order through an index made for it (updates alone may land in any free space).
      const order = `CASE id WHEN ${last} THEN 0 WHEN ${between} THEN 1 WHEN ${first} THEN 2 ELSE 3 END`;
      await f.db.pool.query(`CREATE INDEX heap_order ON outbox ((${order}))`);
      await f.db.pool.query("CLUSTER outbox USING heap_order");
      await f.db.pool.query("DROP INDEX heap_order");
      const heap = await f.db.pool.query("SELECT id FROM outbox WHERE id = ANY($1::bigint[]) ORDER BY ctid", [
        [first, between, last],
      ]);
      expect(heap.rows.map((r) => r.id)).toEqual([last, between, first]);

      const clients = Array.from({ length: 2 }, () => new pg.Client({ connectionString: f.db.url }));
      const [holder, pruner] = clients as [pg.Client, pg.Client];
      await Promise.all(clients.map((c) => c.connect()));
      try {
        await holder.query("BEGIN");
        await holder.query("SELECT 1 FROM outbox WHERE id = $1 FOR NO KEY UPDATE", [between]);
        await pruner.query(plan);
        const pruning = pruneOutbox(pruner, 24, { batch: 1000, deadline: Date.now() + 30_000 });
        pruning.catch(() => {}); // awaited below
        await waitingOnLock("WITH w AS");
        const deleting = f.chat.deleteMessage(await auth(), messageId);
        deleting.catch(() => {}); // awaited below
        // the change statement (pg_stat_activity keeps its first 1 KB: its start)
        await waitingOnLock("UPDATE sessions");
        await holder.query("COMMIT");
        await expect(Promise.all([deleting, pruning])).resolves.toBeDefined();
      } finally {
        await holder.query("ROLLBACK").catch(() => {});
        await Promise.all(clients.map((c) => c.end()));
      }
      const left = await f.db.pool.query(
        "SELECT count(*)::int AS n FROM outbox WHERE id = ANY($1::bigint[])",
        [mine],
      );
      expect(left.rows[0].n).toBe(0);
    },
  );
});
