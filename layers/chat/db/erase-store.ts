import type pg from "pg";
import type { CloudEvent } from "../events/cloudevents.ts";
import { withTransaction } from "./transaction.ts";

/**
 * Erasure: the session and (by cascade) its messages, its Idempotency-Key records (its posts' and the create's)
 * and its events not yet published go; only the chat.session.erased event is left, to tell consumers. Events
 * already published stay until OUTBOX_RETENTION_HOURS, as their copies on the topic stay until its retention: a
 * consumer acts on the erased event. (Deleting them too meant a scan of the whole outbox per erase: only the queue
 * of unpublished events is indexed by session.) The outbox's delete trigger takes the deleted events off the queue
 * (events locked first, then their queue rows, as the previous release's marks do); its insert trigger queues the
 * erased event. Only if the session row was there: a second erase (a retried DELETE, or the retention purge
 * meeting a user's erase) must not delete the first one's erased event before it is published.
 */
export const ERASE = `
WITH s AS (
  DELETE FROM sessions
   WHERE session_id = $1 AND ($4::int IS NULL OR updated_at < now() - make_interval(days => $4::int))
  RETURNING session_id
),
q AS (SELECT id FROM outbox_pending WHERE session_id = $1 AND EXISTS (SELECT 1 FROM s)),
o AS (DELETE FROM outbox WHERE id IN (SELECT id FROM q)),
i AS (DELETE FROM idempotency_records WHERE scope = 'messages-post:' || $1::text AND EXISTS (SELECT 1 FROM s)),
c AS (DELETE FROM idempotency_records WHERE session_id = $1 AND EXISTS (SELECT 1 FROM s)),
e AS (
  INSERT INTO outbox (event_id, session_id, event_type, event)
  SELECT $2::uuid, $1, 'chat.session.erased', $3::jsonb FROM s
)
SELECT count(*)::int AS erased FROM s`;

/**
 * True if this call erased the session; false if it was already gone (and then nothing changed).
 * `idleDays`: erase only if the session is still idle that long (the retention purge: the session may have been
 * used since it was selected, and that user's acknowledged turn must not go); false, changing nothing, if not.
 * The session's row is locked first, in its own statement: a change that commits while the erase waits for the
 * row is then seen by the erase statement (each statement reads from its own start), so the change's events and
 * Idempotency-Key record go with the rest instead of outliving the session.
 */
export async function eraseSession(
  pool: pg.Pool,
  sessionId: string,
  event: CloudEvent,
  idleDays?: number,
): Promise<boolean> {
  return withTransaction(pool, async (client) => {
    const locked = await client.query({
      name: "erase_lock_session",
      text: "SELECT 1 FROM sessions WHERE session_id = $1 FOR UPDATE",
      values: [sessionId],
    });
    if (locked.rowCount === 0) return false;
    const res = await client.query({
      name: "erase_session",
      text: ERASE,
      values: [sessionId, event.id, JSON.stringify(event), idleDays ?? null],
    });
    return res.rows[0]?.erased === 1;
  });
}
