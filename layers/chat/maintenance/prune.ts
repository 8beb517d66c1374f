import type { Queryable } from "../db/chat-store.ts";

/**
 * Rows past their retention, deleted a batch at a time: one DELETE of an hour's worth of a busy table could
 * run past the statement timeout, fail, and leave the table to grow for good. Each batch is its own statement
 * (and commit); the loop stops when a batch comes back short or at the deadline, and the next run goes on.
 * `$1` is the batch size; each statement deletes by primary key what its subquery selects.
 */
const PRUNE = {
  // Published events (off the queue) written more than the retention ago; an event still queued stays.
  outbox: `DELETE FROM outbox WHERE id IN (
             SELECT id FROM outbox o WHERE created_at < now() - make_interval(hours => $2)
                AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id) LIMIT $1)`,
  // The expiry is tested again on the row deleted: a request may take an expired key over (a new claim on the
  // same row) between the subquery's read and the delete, and that claim must stay.
  idempotency: `DELETE FROM idempotency_records WHERE (scope, idempotency_key) IN (
                  SELECT scope, idempotency_key FROM idempotency_records WHERE expires_at < now() LIMIT $1)
                  AND expires_at < now()`,
  consumedEvents: `DELETE FROM consumed_events WHERE event_id IN (
                     SELECT event_id FROM consumed_events WHERE consumed_at < now() - make_interval(hours => $2) LIMIT $1)`,
} as const;

export type PruneTarget = keyof typeof PRUNE;

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
