import type pg from "pg";
import type { Queryable } from "../db/chat-store.ts";
import { withClient } from "../db/pooled-client.ts";
import type { CloudEvent } from "./cloudevents.ts";

export interface OutboxRow {
  id: string;
  event: CloudEvent;
}

/**
 * This session's oldest unpublished events, oldest first (publishing them in this order keeps the session in
 * order): at most `limit`, and those that start within `maxBytes` of event JSON (at least one; the text, not the
 * stored size, which compression can make far smaller), so a backlog of long messages after a Kafka outage is not
 * read whole into a request. A prefix: what is left, the next change or the relay sends.
 */
export async function pendingForSession(
  db: Queryable,
  sessionId: string,
  limit: number,
  maxBytes: number,
): Promise<OutboxRow[]> {
  const res = await db.query({
    name: "outbox_pending_session",
    text: `SELECT id, event FROM (
             SELECT o.id, o.event,
                    sum(octet_length(o.event::text)) OVER (ORDER BY p.id ROWS UNBOUNDED PRECEDING)
                      - octet_length(o.event::text) AS before
               FROM outbox_pending p JOIN outbox o ON o.id = p.id
              WHERE p.session_id = $1 ORDER BY p.id LIMIT $2) b
            WHERE before < $3 ORDER BY id`,
    values: [sessionId, limit, maxBytes],
  });
  return res.rows as OutboxRow[];
}

/** A relay read: the rows, and whether the outbox may hold more (the count or the byte bound cut it). */
export interface OutboxBatch {
  rows: OutboxRow[];
  more: boolean;
}

/**
 * An event's size for the relay's byte bound, without rendering every event as text: the stored size, or the
 * JSON's length when stored compressed (compression can make it 100 × smaller). Uncompressed, the JSON is at most
 * 6 × the stored size (a control character is 1 byte in jsonb, `\u0001` in JSON), typically about 1 ×.
 */
const EVENT_SIZE = `CASE WHEN pg_column_compression(o.event) IS NULL THEN pg_column_size(o.event)
                         ELSE octet_length(o.event::text) END`;

/**
 * The oldest pending rows (after `filter`), cut where their running size reaches $2: at least one. The queue's
 * first ids are taken from the queue alone, then their events fetched: ordered by the join, the planner may walk
 * the outbox's primary key from its oldest event instead (`o.id = p.id`: either order serves), probing the queue
 * for each, and does once the queue is about a third of the outbox (a Kafka outage of hours): every published event
 * still retained was read before the queue's first (1.2 M: 1.7–3 s a read, past DB_STATEMENT_TIMEOUT_MS with more).
 */
const boundedBatch = (filter: string) => `
SELECT id, event, upto FROM (
  SELECT id, event, size, sum(size) OVER (ORDER BY id ROWS UNBOUNDED PRECEDING) AS upto FROM (
    SELECT p.id, o.event, ${EVENT_SIZE} AS size
      FROM (SELECT p.id FROM outbox_pending p ${filter} ORDER BY p.id LIMIT $1) p
      JOIN outbox o ON o.id = p.id) i) b
 WHERE upto - size < $2 ORDER BY id`;

/** The relay's read of the oldest unpublished events, and its variant that leaves out events in flight ($3). */
export const PENDING_BATCH = boundedBatch("");
export const PENDING_BATCH_EXCLUDING = boundedBatch(
  // an anti-join on a hashed list, not `<> ALL(array)`, whose cost grows with rows × list length
  "WHERE NOT EXISTS (SELECT 1 FROM unnest($3::bigint[]) AS f(id) WHERE f.id = p.id)",
);

/**
 * The oldest unpublished events of all sessions (a prefix of each session's backlog), at most `limit` and those
 * that start within `maxBytes` (see EVENT_SIZE), leaving out `inFlight` (outbox row ids): events already fetched,
 * whose publish or mark is still under way. The byte bound keeps a backlog of long messages after a Kafka outage
 * from being read 500 at a time (up to 48 MB of JSON per read).
 */
export async function pendingBatch(
  db: Queryable,
  limit: number,
  maxBytes: number,
  inFlight: readonly string[] = [],
): Promise<OutboxBatch> {
  const res = await db.query(
    inFlight.length === 0
      ? { name: "outbox_pending_batch", text: PENDING_BATCH, values: [limit, maxBytes] }
      : {
          name: "outbox_pending_batch_excluding",
          text: PENDING_BATCH_EXCLUDING,
          values: [limit, maxBytes, inFlight],
        },
  );
  const rows = res.rows as (OutboxRow & { upto: string })[]; // upto: the running size, a bigint's text
  const last = rows.at(-1);
  return {
    rows,
    more: rows.length === limit || (last !== undefined && Number(last.upto) >= maxBytes),
  };
}

/**
 * A mark deletes the queue rows `select` names after it has locked them in id order (the sort is under the lock).
 * The relay and a request's fast path can mark the same just-committed events at once; each delete alone took
 * its rows in its plan's order (the relay's by id, or the queue's physical order when it is short; the fast
 * path's by event id), and two marks taking the same rows in opposite orders deadlocked.
 */
const markQueued = (select: string) =>
  `DELETE FROM outbox_pending WHERE id = ANY(ARRAY(${select} ORDER BY p.id FOR UPDATE OF p))`;

/** Takes published events (outbox row ids) off the queue: a delete of two-column rows; the events stay. */
export async function markPublished(db: Queryable, rowIds: readonly string[]): Promise<void> {
  if (rowIds.length === 0) return;
  await db.query({
    name: "outbox_mark_published",
    text: markQueued("SELECT p.id FROM outbox_pending p WHERE p.id = ANY($1::bigint[])"),
    values: [rowIds],
  });
}

/** As markPublished, for events known by their event id (a change's own, sent after its commit). */
export async function markEventsPublished(db: Queryable, eventIds: readonly string[]): Promise<void> {
  if (eventIds.length === 0) return;
  await db.query({
    name: "outbox_mark_events_published",
    text: markQueued(
      "SELECT p.id FROM outbox_pending p JOIN outbox o ON o.id = p.id WHERE o.event_id = ANY($1::uuid[])",
    ),
    values: [eventIds],
  });
}

/**
 * Takes off the queue, unpublished, those of its oldest `$2` events written over `$1` hours ago (locked in id order,
 * as the marks take them); returns how many. Only for a stack without Kafka (expireUnpublished).
 */
const DEQUEUE_EXPIRED = markQueued(`SELECT p.id FROM outbox_pending p
  WHERE p.id IN (SELECT w.id FROM (SELECT id FROM outbox_pending ORDER BY id LIMIT $2) AS w
                   JOIN outbox o ON o.id = w.id
                  WHERE o.created_at < now() - make_interval(hours => $1))`);

export async function dequeueExpired(db: Queryable, retentionHours: number, limit: number): Promise<number> {
  const res = await db.query({
    name: "outbox_dequeue_expired",
    text: DEQUEUE_EXPIRED,
    values: [retentionHours, limit],
  });
  return res.rowCount ?? 0;
}

// pg_try_advisory_lock key: "one relay at a time" across every process on the database.
const RELAY_LOCK_KEY = 0x63686174; // "chat"

/**
 * Holds the relay lock on its own connection for the duration of `work`. Returns null when another relay
 * holds it: two relays at once would each publish a non-prefix of some session's backlog, out of order.
 */
export async function withRelayLock<T>(
  pool: pg.Pool,
  work: (held: () => boolean) => Promise<T>,
): Promise<T | null> {
  // The lock's connection stays taken while `work` queries through the pool: one connection would wait forever.
  const max = (pool as pg.Pool & { options?: { max?: number } }).options?.max;
  if (max !== undefined && max < 2)
    throw new Error(`the outbox relay needs a pool of at least 2 connections (DB_POOL_MAX is ${max})`);
  return withClient(pool, async (client, checkout) => {
    // RDS Proxy pins a client connection that calls pg_try_advisory_lock (taken or not) to its database connection
    // until the client disconnects: back in the pool, it kept a database connection no one else could use for the
    // warm sandbox's life (a frozen one's, until the proxy's idle client timeout). It is closed on release instead.
    checkout.markBroken(new Error("pinned by RDS Proxy: the relay lock's connection is not reused"));
    const got = await client.query("SELECT pg_try_advisory_lock($1) AS ok", [RELAY_LOCK_KEY]);
    if (!got.rows[0]?.ok) return null;
    try {
      return await work(() => !checkout.lost);
    } finally {
      // Unlocked before the connection closes: behind the proxy, closing ends the client's session, and AWS does not
      // say what becomes of the database's. A lost connection took its lock with it; a failed unlock is closed with
      // its connection all the same: either way the work's result stands.
      if (!checkout.lost)
        await client.query("SELECT pg_advisory_unlock($1)", [RELAY_LOCK_KEY]).catch(() => {});
    }
  });
}

/** The queue's first id, then its event: not ordered through a join (see boundedBatch). */
export const OLDEST_PENDING_AGE = `SELECT coalesce(extract(epoch FROM now() - (
  SELECT o.created_at FROM outbox o WHERE o.id = (SELECT min(id) FROM outbox_pending))), 0)::float8 AS age`;

/**
 * Seconds since the oldest event still waiting to be published was written (0 when none waits): what the relay
 * reports after each run, for an alarm on a backlog that stops draining (ids grow with time: the queue's first).
 */
export async function oldestPendingAgeSeconds(db: Queryable): Promise<number> {
  const res = await db.query({ name: "outbox_oldest_pending_age", text: OLDEST_PENDING_AGE });
  return Number(res.rows[0].age);
}
