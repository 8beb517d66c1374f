import { randomBytes, randomUUID } from "node:crypto";
import { runner } from "node-pg-migrate";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIGRATIONS_DIR, migrate } from "../../layers/chat/db/migrate.ts";
import { markPublished, pendingBatch } from "../../layers/chat/events/outbox-store.ts";
import { ADMIN_URL, withDatabase } from "../helpers/global-database.ts";

/**
 * The outbox's queue of unpublished events (migration 1795737600000) replaced `published_at IS NULL`. A deploy
 * runs the migration before it replaces the functions, so the previous release's code meets the new schema for
 * a while: its writes must still be queued and its marks still dequeue, or events would be lost or sent twice.
 */
const name = `chat_mig_${randomBytes(6).toString("hex")}`;
const url = withDatabase(ADMIN_URL, name);
let pool: pg.Pool;

async function admin(sql: string) {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

async function migrateBy(direction: "up" | "down", count: number) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction,
      count,
      migrationsTable: "pgmigrations",
      log: () => {},
    });
  } finally {
    await client.end();
  }
}

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

  it("queues exactly the events the previous schema had not published", async () => {
    await migrateBy("up", 2); // the schema before the queue
    await writeEvent(session, true); // published: not queued
    waitingBefore = [await writeEvent(session, false), await writeEvent(session, false)];
    await migrate(url);
    expect(await queued()).toEqual(waitingBefore);
  });

  it("still queues the previous release's writes and takes its marks off the queue", async () => {
    const [first, second] = waitingBefore;
    await pool.query("UPDATE outbox SET published_at = now() WHERE event_id = $1 AND published_at IS NULL", [
      first,
    ]);
    const later = await writeEvent(session, false);
    await writeEvent(session, true); // written as published: not queued
    expect(await queued()).toEqual([second, later]);
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
    await migrateBy("down", 1);
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
