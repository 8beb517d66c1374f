import { randomBytes, randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "../../layers/chat/db/migrate.ts";
import { markPublished, pendingBatch } from "../../layers/chat/events/outbox-store.ts";
import { ADMIN_URL, withDatabase } from "../helpers/global-database.ts";
import { adminQuery as admin, migrateBy as migrateUrlBy, migrationFiles } from "../helpers/migrations.ts";

/**
 * The outbox's queue of unpublished events (migration 1795737600000) replaced `published_at IS NULL`. A deploy
 * runs the migration before it replaces the functions, so the previous release's code meets the new schema for
 * a while: its writes must still be queued and its marks still dequeue, or events would be lost or sent twice.
 */
const MIGRATION = "1795737600000_outbox-pending-queue";
const files = migrationFiles();
/** How many migrations come before this one, and how many from it to the newest (a down run reverts them all). */
const before = files.findIndex((f) => f.startsWith(MIGRATION));
const fromIt = files.length - before;
const name = `chat_mig_${randomBytes(6).toString("hex")}`;
const url = withDatabase(ADMIN_URL, name);
let pool: pg.Pool;

const migrateBy = (direction: "up" | "down", count: number) => migrateUrlBy(url, direction, count);

/** An outbox row as the previous release wrote it (published_at set when it was written as published). */
async function writeEvent(session: string, published: boolean): Promise<string> {
  const id = randomUUID();
  await pool.query(
    `INSERT INTO outbox (event_id, session_id, event_type, event, published_at)
     VALUES ($1::uuid, $2, 'chat.message.created', jsonb_build_object('id', $1::text), CASE WHEN $3 THEN now() END)`,
    [id, session, published],
  );
  return id;
}

const queued = async () =>
  (
    await pool.query<{ event_id: string }>(
      "SELECT o.event_id FROM outbox_pending p JOIN outbox o ON o.id = p.id ORDER BY p.id",
    )
  ).rows.map((r) => r.event_id);

beforeAll(async () => {
  await admin(`CREATE DATABASE ${name}`);
  pool = new pg.Pool({ connectionString: url, max: 2 });
});
afterAll(async () => {
  await pool?.end();
  await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
});

describe("the outbox queue migration", () => {
  const session = randomUUID();
  let waitingBefore: string[];

  it("queues exactly the events the previous schema had not published, a write committing meanwhile too", async () => {
    expect(before).toBeGreaterThan(0);
    await migrateBy("up", before); // the schema before the queue
    await writeEvent(session, true); // published: not queued
    waitingBefore = [await writeEvent(session, false), await writeEvent(session, false)];
    // a write of the previous release in flight when the migration starts, committed while it runs
    const writer = new pg.Client({ connectionString: url });
    await writer.connect();
    try {
      await writer.query("BEGIN");
      const inFlight = randomUUID();
      await writer.query(
        `INSERT INTO outbox (event_id, session_id, event_type, event)
         VALUES ($1::uuid, $2, 'chat.message.created', jsonb_build_object('id', $1::text))`,
        [inFlight, session],
      );
      const migrating = migrate(url);
      // the migration waits for that write (a lock it cannot take yet) before it reads what to queue
      for (let i = 0; i < 200; i++) {
        const waiting = await pool.query(
          "SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND relation = 'outbox'::regclass",
        );
        if (waiting.rows[0].n > 0) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      await writer.query("COMMIT");
      await migrating;
      waitingBefore.push(inFlight);
    } finally {
      await writer.end();
    }
    expect(await queued()).toEqual(waitingBefore);
  });

  it("the previous release's writes are queued, its marks and its erase's deletes take events off the queue", async () => {
    const [first, second, third] = waitingBefore;
    await pool.query("UPDATE outbox SET published_at = now() WHERE event_id = $1 AND published_at IS NULL", [
      first,
    ]);
    const later = await writeEvent(session, false);
    await writeEvent(session, true); // written as published: not queued
    expect(await queued()).toEqual([second, third, later]);
    // its erase deletes a session's unpublished events, knowing nothing of the queue
    const erased = randomUUID();
    await writeEvent(erased, false);
    await pool.query("DELETE FROM outbox WHERE session_id = $1 AND published_at IS NULL", [erased]);
    expect(await queued()).toEqual([second, third, later]);
    const orphans = await pool.query("SELECT count(*)::int AS n FROM outbox_pending WHERE session_id = $1", [
      erased,
    ]);
    expect(orphans.rows[0].n).toBe(0); // a queue row without its event would read as the session's backlog
  });

  it("the previous release's reads keep their indexes (no scan of the whole outbox)", async () => {
    const client = await pool.connect();
    try {
      // a scan is still chosen when no index can serve; a filter or a sort means an index read past rows it does
      // not want
      await client.query("SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off");
      for (const sql of [
        "SELECT 1 FROM outbox WHERE session_id = '00000000-0000-4000-8000-000000000001' AND published_at IS NULL",
        "SELECT id, event FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 500",
        "SELECT id FROM outbox WHERE published_at < now() - interval '24 hours' LIMIT 500",
      ]) {
        const plan = await client.query(`EXPLAIN (FORMAT JSON) ${sql}`);
        expect(JSON.stringify(plan.rows[0]), sql).not.toMatch(/Seq Scan|"Filter"|"Sort"/);
      }
    } finally {
      client.release();
    }
  });

  it("the new relay reads the queue in order and dequeues by row id; the events stay", async () => {
    const batch = await pendingBatch(pool, 10, 1_000_000);
    expect(batch.rows.map((r) => (r.event as unknown as { id: string }).id)).toEqual(await queued());
    const first = batch.rows[0];
    if (!first) throw new Error("nothing queued");
    await markPublished(pool, [first.id]);
    expect(await queued()).toEqual(batch.rows.slice(1).map((r) => (r.event as unknown as { id: string }).id));
    const kept = await pool.query("SELECT count(*)::int AS n FROM outbox WHERE id = $1", [first.id]);
    expect(kept.rows[0].n).toBe(1);
  });

  it("an emptied outbox leaves no queue behind (truncated alone or with its queue)", async () => {
    await pool.query("TRUNCATE outbox");
    expect((await pool.query("SELECT count(*)::int AS n FROM outbox_pending")).rows[0].n).toBe(0);
    await writeEvent(session, false);
    await pool.query("TRUNCATE outbox, outbox_pending");
    expect((await pool.query("SELECT count(*)::int AS n FROM outbox_pending")).rows[0].n).toBe(0);
  });

  it("down: published_at is NULL exactly for the events still queued, and the queue goes", async () => {
    const sent = await writeEvent(session, false);
    const waiting = await writeEvent(session, false);
    await pool.query("DELETE FROM outbox_pending WHERE id IN (SELECT id FROM outbox WHERE event_id = $1)", [
      sent,
    ]);
    await migrateBy("down", fromIt);
    const rows = await pool.query(
      "SELECT event_id, published_at IS NULL AS pending FROM outbox WHERE event_id IN ($1, $2) ORDER BY id",
      [sent, waiting],
    );
    expect(rows.rows).toEqual([
      { event_id: sent, pending: false },
      { event_id: waiting, pending: true },
    ]);
    const table = await pool.query("SELECT to_regclass('outbox_pending') IS NULL AS gone");
    expect(table.rows[0].gone).toBe(true);
  });
});
