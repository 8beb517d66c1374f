import type { Queryable } from "../db/chat-store.ts";

/**
 * Rows past their retention, deleted a batch at a time: one DELETE of an hour's worth of a busy table could
 * run past the statement timeout, fail, and leave the table to grow for good. Each batch is its own statement
 * (and commit); the loop stops when a batch comes back short or at the deadline, and the next run goes on.
 * `$1` is the batch size. Each statement picks its batch oldest first through the index on its age (a bounded
 * index range) and deletes exactly those row versions by ctid (a TID scan): a `key IN (subquery)` let the planner
 * hash-join the batch against every row past retention, a scan of the whole backlog (or table) per batch.
 * A row another transaction updates while the batch waits for it has a new version at another ctid: PostgreSQL
 * 15.20 leaves it to a later batch; a server that follows the update to it still tests the statement's other
 * conditions on it, hence the tests repeated below where rows change.
 */
export const PRUNE = {
  // The expiry is tested again on the row deleted: a request may take an expired key over (a new claim on the
  // same row) between the subquery's read and the delete, and that claim must stay.
  idempotency: `DELETE FROM idempotency_records
                 WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_records WHERE expires_at < now()
                                         ORDER BY expires_at LIMIT $1))
                   AND expires_at < now()`,
  // Never updated (the consumer inserts, ON CONFLICT DO NOTHING): nothing to test again.
  consumedEvents: `DELETE FROM consumed_events
                    WHERE ctid = ANY(ARRAY(SELECT ctid FROM consumed_events
                                            WHERE consumed_at < now() - make_interval(hours => $2)
                                            ORDER BY consumed_at LIMIT $1))`,
  // An erased session's projection row, once its events can no longer come back as anything but duplicates
  // nobody remembers; tested again on the row deleted, as a late event may have just moved its time.
  erasedActivity: `DELETE FROM session_activity
                    WHERE ctid = ANY(ARRAY(SELECT ctid FROM session_activity
                                            WHERE erased AND last_event_time < now() - make_interval(hours => $2)
                                            ORDER BY last_event_time LIMIT $1))
                      AND erased AND last_event_time < now() - make_interval(hours => $2)`,
} as const;

export type PruneTarget = keyof typeof PRUNE;

/**
 * One window of the outbox, oldest first from `$3` (an id): its events written over `$2` hours ago and no longer
 * queued are deleted (the delete trigger leaves the queue alone: none of them is on it). Ids grow with time, so
 * a window that holds a newer event has reached the part of the outbox the retention keeps; an index on
 * created_at (an entry per event written) is not needed, and an event still queued, however old, is read once
 * per run and stays. The events are locked in id order before they are deleted, as a delete's redaction locks
 * its message's: left to the plan, a small outbox's (a hash join over a heap scan, once the prepared statement's
 * plan is generic) took them in heap order, and a prune and a delete could each hold an event the other waited for.
 */
const PRUNE_OUTBOX_WINDOW = `
WITH w AS (SELECT id, created_at < now() - make_interval(hours => $2) AS old
             FROM outbox WHERE id > $3 ORDER BY id LIMIT $1),
d AS (DELETE FROM outbox o
       WHERE o.id = ANY(ARRAY(
         SELECT x.id FROM outbox x JOIN w ON w.id = x.id
          WHERE w.old AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = x.id)
          ORDER BY x.id FOR UPDATE OF x))
       RETURNING 1)
SELECT (SELECT count(*) FROM d)::int AS deleted, (SELECT count(*) FROM w)::int AS seen,
       (SELECT max(id) FROM w)::text AS last, coalesce((SELECT bool_and(old) FROM w), false) AS all_old`;

/** Deletes published events written over `retentionHours` ago, a window per statement; returns how many went. */
export async function pruneOutbox(
  db: Queryable,
  retentionHours: number,
  opts: PruneOptions,
): Promise<number> {
  let deleted = 0;
  let after = "0";
  do {
    const res = await db.query({
      name: "prune_outbox_window",
      text: PRUNE_OUTBOX_WINDOW,
      values: [opts.batch, retentionHours, after],
    });
    const w = res.rows[0] as { deleted: number; seen: number; last: string | null; all_old: boolean };
    deleted += w.deleted;
    if (w.seen < opts.batch || !w.all_old || w.last === null) break;
    after = w.last;
  } while (Date.now() < opts.deadline);
  return deleted;
}

export interface PruneOptions {
  batch: number;
  /** Date.now() past which no new batch starts. */
  deadline: number;
}

/** Deletes `target`'s rows past retention (hours, where the target has one); returns how many went. */
export async function prune(
  db: Queryable,
  target: PruneTarget,
  retentionHours: number | undefined,
  opts: PruneOptions,
): Promise<number> {
  const values = retentionHours === undefined ? [opts.batch] : [opts.batch, retentionHours];
  let deleted = 0;
  do {
    const res = await db.query({ name: `prune_${target}`, text: PRUNE[target], values });
    const n = res.rowCount ?? 0;
    deleted += n;
    if (n < opts.batch) break;
  } while (Date.now() < opts.deadline);
  return deleted;
}
