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

describe("a delete's redaction and the outbox prune", () => {
  it("lock the same events in one order under a long outbox's plans: both finish", async () => {
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
    // The event between, then the message's first, move past its last one on the heap (updates that are not HOT),
    // as updates and reused space move rows in a long-lived outbox: heap order last, between, first.
    for (const id of [between, first])
      await f.db.pool.query(`UPDATE outbox SET event = jsonb_set(event, '{moved}', 'true') WHERE id = $1`, [
        id,
      ]);

    const clients = Array.from({ length: 2 }, () => new pg.Client({ connectionString: f.db.url }));
    const [holder, pruner] = clients as [pg.Client, pg.Client];
    await Promise.all(clients.map((c) => c.connect()));
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT 1 FROM outbox WHERE id = $1 FOR NO KEY UPDATE", [between]);
      // the plans of a long outbox: the window walked by id (index scans, nested loops)
      await pruner.query(
        "SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off",
      );
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
    const left = await f.db.pool.query("SELECT count(*)::int AS n FROM outbox WHERE id = ANY($1::bigint[])", [
      mine,
    ]);
    expect(left.rows[0].n).toBe(0);
  });
});
