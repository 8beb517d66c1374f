import { randomUUID } from "node:crypto";
import { runner } from "node-pg-migrate";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIGRATIONS_DIR, migrate } from "../../layers/chat/db/migrate.ts";
import { markEventsPublished, markPublished } from "../../layers/chat/events/outbox-store.ts";
import { untilWaitingForLock } from "../helpers/lock-waits.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * Undoing the outbox queue (migration 1795737600000) sets published_at on what this release published. It used to
 * take the outbox's lock first and then update every such event (a million: 21-42 s), and every post, edit and
 * erase (they write to the outbox) waited behind it. It now marks them first and commits, then takes the lock for
 * what was published meanwhile. The previous release runs all along (its relay sends these events again and marks
 * them): the down must neither lose a mark nor deadlock with it.
 */
const MIGRATION = "1795737600000_outbox-pending-queue";
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase(4); // migrated up to the newest
});
afterAll(() => db?.drop());

/** An event as this release writes it: queued by the insert trigger. */
async function write(client: pg.Pool | pg.Client, eventId = randomUUID()): Promise<string> {
  await client.query(
    `INSERT INTO outbox (event_id, session_id, event_type, event)
     VALUES ($1::uuid, '00000000-0000-4000-8000-00000000d0e1', 'chat.message.created', jsonb_build_object('id', $1::text))`,
    [eventId],
  );
  return eventId;
}

/**
 * Reverts this migration and every one after it, newest first, each in its own transaction (as the CLI does without
 * a lock); `keep`: how many of them stay, oldest first (1: all but this one).
 */
async function migrateDownThroughQueue(url: string, keep = 0) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const applied = await client.query("SELECT count(*)::int AS n FROM pgmigrations WHERE name >= $1", [
      MIGRATION,
    ]);
    await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction: "down",
      count: applied.rows[0].n - keep,
      migrationsTable: "pgmigrations",
      log: () => {},
    });
  } finally {
    await client.end();
  }
}

/** Resolves once the down migration waits for a lock: any, or one that a backend of `pids` holds. */
async function untilDownWaits(pool: pg.Pool, pids?: number[]): Promise<void> {
  for (let i = 0; i <= 500; i++) {
    const r = await pool.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND query LIKE '%-- Down Migration%' AND wait_event_type = 'Lock'
          AND ($1::int[] IS NULL OR $1 && pg_blocking_pids(pid))`,
      [pids ?? null],
    );
    if (r.rows[0].n > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`the down migration never waited for a lock${pids ? ` of backends ${pids}` : ""}`);
}

const pidOf = async (c: pg.Client) => (await c.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;

describe("the outbox queue's down migration", () => {
  it("marks what this release published while writes go on, deadlocks with no mark, and the queue comes back on up", async () => {
    const pool = db.pool;
    // The later migrations' downs first, on their own: not under test here, and one of them drops an index of the
    // outbox, which (as any DDL on it) waits for the previous release's open mark below with writes queued behind.
    await migrateDownThroughQueue(db.url, 1);
    const sent = await write(pool); // published by this release: off the queue, published_at NULL
    const held = await write(pool); // the same, its row held by the previous release's mark, which then fails
    const waiting = await write(pool); // still queued
    const sentDuring = await write(pool); // queued when the down starts, published while it marks
    const sentLate = await write(pool); // queued when the down starts, published once it has marked
    await markEventsPublished(pool, [sent, held]);
    const previous = randomUUID(); // the previous release's row written as published: never queued
    await pool.query(
      `INSERT INTO outbox (event_id, session_id, event_type, event, published_at)
       VALUES ($1::uuid, '00000000-0000-4000-8000-00000000d0e1', 'chat.message.created', '{}', now() - interval '1 hour')`,
      [previous],
    );
    // Holds each update of an outbox row until `staller` lets go: the down stops in the middle of its marking.
    await pool.query(`CREATE FUNCTION test_stall() RETURNS trigger LANGUAGE plpgsql AS $$
                      BEGIN PERFORM pg_advisory_xact_lock(7311); RETURN NEW; END $$;
                      CREATE TRIGGER test_stall BEFORE UPDATE ON outbox FOR EACH ROW EXECUTE FUNCTION test_stall()`);

    const clients = Array.from({ length: 4 }, () => new pg.Client({ connectionString: db.url }));
    const [inFlight, mark, staller, writer] = clients as [pg.Client, pg.Client, pg.Client, pg.Client];
    await Promise.all(clients.map((c) => c.connect()));
    let down: Promise<void> | undefined;
    let marking: Promise<pg.QueryResult> | undefined;
    const writtenInFlight = randomUUID();
    const writtenDuring = randomUUID();
    let publishedNew = "";
    try {
      await staller.query("SELECT pg_advisory_lock(7311)");
      // the previous release's relay marking `held` then `sent` (it sends them again: it sees them unpublished);
      // it holds the first row when the down starts
      await mark.query("BEGIN");
      await mark.query("SELECT 1 FROM outbox WHERE event_id = $1 FOR UPDATE", [held]);
      // a write in flight when the down starts, committed once the down waits for it
      await inFlight.query("BEGIN");
      await write(inFlight, writtenInFlight);
      down = migrateDownThroughQueue(db.url);
      down.catch(() => {}); // awaited below
      await untilDownWaits(pool);
      await inFlight.query("COMMIT");
      await untilDownWaits(pool, [await pidOf(staller), await pidOf(mark)]); // marking, stopped

      // a post while the down marks: written at once, not held behind a lock of the down's
      const post = write(writer, writtenDuring);
      const outcome = await Promise.race([
        post.then(() => "written"),
        untilWaitingForLock(pool, "INSERT INTO outbox").then(
          () => "waited for a lock",
          () => "written", // it never waited
        ),
      ]);
      expect(outcome).toBe("written");
      await post;
      // this release's publishes while the down marks: one queued before it started, one written since
      publishedNew = await write(pool);
      await markEventsPublished(pool, [sentDuring]);
      const late = await pool.query<{ id: string }>(
        "SELECT id FROM outbox WHERE event_id = ANY($1::uuid[])",
        [[sentLate, writtenInFlight, publishedNew]],
      );
      // the relay's mark goes on to a row the down has marked (and holds); then the down may finish marking
      marking = mark.query(
        "UPDATE outbox SET published_at = now() WHERE event_id = ANY($1::uuid[]) AND published_at IS NULL",
        [[sent]],
      );
      marking.catch(() => {}); // awaited below
      await untilWaitingForLock(pool, "UPDATE outbox SET published_at");
      await staller.query("SELECT pg_advisory_unlock(7311)");
      expect((await marking).rowCount).toBe(0); // no deadlock: the down's marks committed before its lock
      await untilDownWaits(pool, [await pidOf(mark)]); // at its lock, the relay's transaction still open
      // this release's last publishes, after the down marked and before its lock (by row id: the outbox's lock
      // is asked for): queued before it started, in flight when it started, written since
      await markPublished(
        pool,
        late.rows.map((r) => r.id),
      );
      await mark.query("ROLLBACK"); // the relay's mark fails (e.g. its statement timeout): `held` stays unmarked
      await down;
    } finally {
      await staller.query("SELECT pg_advisory_unlock_all()").catch(() => {});
      await marking?.catch(() => {});
      await mark.query("ROLLBACK").catch(() => {});
      await inFlight.query("COMMIT").catch(() => {});
      await down?.catch(() => {});
      await Promise.all(clients.map((c) => c.end()));
      await pool.query("DROP TRIGGER IF EXISTS test_stall ON outbox; DROP FUNCTION IF EXISTS test_stall()");
    }

    const rows = await pool.query<{ event_id: string; pending: boolean }>(
      "SELECT event_id, published_at IS NULL AS pending FROM outbox WHERE event_id = ANY($1::uuid[]) ORDER BY id",
      [[sent, held, waiting, sentDuring, sentLate, previous, writtenInFlight, writtenDuring, publishedNew]],
    );
    expect(rows.rows).toEqual([
      { event_id: sent, pending: false },
      { event_id: held, pending: false },
      { event_id: waiting, pending: true },
      { event_id: sentDuring, pending: false },
      { event_id: sentLate, pending: false },
      { event_id: previous, pending: false },
      { event_id: writtenInFlight, pending: false },
      { event_id: writtenDuring, pending: true },
      { event_id: publishedNew, pending: false },
    ]);
    const gone = await pool.query("SELECT to_regclass('outbox_pending') IS NULL AS gone");
    expect(gone.rows[0].gone).toBe(true);

    // up again: exactly the unpublished events are queued
    await migrate(db.url);
    const queued = await pool.query<{ event_id: string }>(
      "SELECT o.event_id FROM outbox_pending p JOIN outbox o ON o.id = p.id ORDER BY p.id",
    );
    expect(queued.rows.map((r) => r.event_id)).toEqual([waiting, writtenDuring]);
  });
});
