import type pg from "pg";
import type { CloudEvent } from "../events/cloudevents.ts";
import { isUnanswered, noteNotCommitted } from "./pooled-client.ts";
import { withTransaction } from "./transaction.ts";

/**
 * Erasure, after ERASE_PERSONAL_EVENTS: the session and (by cascade) its messages, its Idempotency-Key records (its
 * posts' and the create's) and its events not yet published go; only the chat.session.erased event is left, to
 * tell consumers. Its published events that carry nothing the user sent (its messages' deleted events) stay until
 * OUTBOX_RETENTION_HOURS, as their copies on the topic stay until its retention: only the queue of unpublished
 * events is indexed by session. The outbox's delete trigger takes the deleted events off the queue (events locked
 * first, then their queue rows, as the previous release's marks do); its insert trigger queues the erased event.
 * Only if the session row was there: a second erase (a retried DELETE, or the retention purge meeting a user's
 * erase) must not delete the first one's erased event before it is published.
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

/** Of the session's events (as `r`), those that carry what its user sent: its created event, its messages' created and edited events. */
const PERSONAL = `(r.event_type = 'chat.session.created'
      OR r.event_type IN ('chat.message.created', 'chat.message.edited')
         AND (r.event -> 'data' ->> 'message_id')::uuid
             = ANY(ARRAY(SELECT m.message_id FROM messages AS m WHERE m.session_id = $1)))`;

/**
 * The session's events that carry what its user sent: its created event (the user_id) and its messages' created
 * and edited events (their text), queued or published and kept for OUTBOX_RETENTION_HOURS. Found through two
 * partial indexes (outbox_session_created_idx; outbox_message_idx, by the session's message ids). A statement of
 * its own, so DB_STATEMENT_TIMEOUT_MS bounds it apart from the rest: a session at MAX_SESSION_MESSAGES of long
 * messages, all posted within the retention, makes it the erase's longest (≈ 1 s here).
 */
export const ERASE_PERSONAL_EVENTS = `
DELETE FROM outbox WHERE id = ANY(ARRAY(
  SELECT r.id FROM outbox AS r WHERE r.session_id = $1 AND ${PERSONAL}
   ORDER BY r.id FOR UPDATE OF r))`;

/**
 * Every event the erase deletes (its queued ones, and those of ERASE_PERSONAL_EVENTS), in id order, before any of
 * their queue rows (LOCK_QUEUE): events before their queue rows, as the previous release's marks take them (an
 * update of the events, whose trigger deletes the queue rows); in id order, as the prune and a delete's redaction
 * take events.
 */
export const LOCK_EVENTS = `
SELECT 1 FROM outbox AS r
 WHERE r.session_id = $1
   AND (r.id = ANY(ARRAY(SELECT p.id FROM outbox_pending AS p WHERE p.session_id = $1)) OR ${PERSONAL})
 ORDER BY r.id FOR UPDATE OF r`;

const LOCK_SESSION = `
SELECT 1 FROM sessions
 WHERE session_id = $1 AND ($2::int IS NULL OR updated_at < now() - make_interval(days => $2::int))
   FOR UPDATE`;

/**
 * The session's queue rows, in id order, after their events (LOCK_EVENTS) and before the erase's two deletes take
 * them (through the outbox's delete trigger, each in its own order): the relay's and the fast path's marks lock
 * queue rows in id order, and two deletes taking a session's queue rows in two batches could each hold one a mark
 * waits for while waiting for one the mark holds (a deadlock). No new row joins the queue meanwhile: every change
 * of the session takes the session row first.
 */
const LOCK_QUEUE = "SELECT 1 FROM outbox_pending WHERE session_id = $1 ORDER BY id FOR UPDATE";

/**
 * Whether the session row is still there, after an erase whose COMMIT went unanswered. That erase's transaction
 * held the row (FOR UPDATE) when it sent the COMMIT, and FOR KEY SHARE waits for that lock: while the transaction
 * is still open (its COMMIT on the way, or lost with a connection the server has not yet seen close), this waits,
 * so what it reads is the outcome, never the state before it. A plain read could find the row a moment before the
 * COMMIT lands and call a made erase not made.
 */
const SESSION_PRESENT = "SELECT 1 FROM sessions WHERE session_id = $1 FOR KEY SHARE";

/**
 * The client's bound on that check: one short query, inside session-erase's timeout after the COMMIT's own
 * bound (DB_STATEMENT_TIMEOUT_MS + 1 s); a check that waits longer is one that cannot be made.
 */
export const ERASE_CHECK_MS = 1000;

/**
 * True if this call erased the session; false if it was already gone (and then nothing changed), or if its COMMIT
 * went unanswered and the session is gone after it (erased by this call or another: the erased event, if this
 * one's, is the relay's to publish). If the check finds the session there, the COMMIT's error is a plain failure
 * (nothing changed); if the check cannot be made, it stays unanswered (isUnanswered: the erase may have been made).
 * `idleDays`: erase only if the session is still idle that long (the retention purge: the session may have been
 * used since it was selected, and that user's acknowledged turn must not go); false, changing nothing, if not.
 * The session's row is locked first, in its own statement: a change that commits while the erase waits for the
 * row is then seen by the erase's statements (each statement reads from its own start), so the change's events and
 * Idempotency-Key record go with the rest instead of outliving the session. The lock applies the idle test too
 * (to the row as that change left it), so a session no longer idle loses none of its events.
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
      text: LOCK_SESSION,
      values: [sessionId, idleDays ?? null],
    });
    if (locked.rowCount === 0) return false;
    await client.query({ name: "erase_lock_events", text: LOCK_EVENTS, values: [sessionId] });
    await client.query({ name: "erase_lock_queue", text: LOCK_QUEUE, values: [sessionId] });
    await client.query({ name: "erase_personal_events", text: ERASE_PERSONAL_EVENTS, values: [sessionId] });
    const res = await client.query({
      name: "erase_session",
      text: ERASE,
      values: [sessionId, event.id, JSON.stringify(event), idleDays ?? null],
    });
    return res.rows[0]?.erased === 1;
  }).catch((err: unknown) => afterUnansweredCommit(pool, sessionId, err));
}

async function afterUnansweredCommit(pool: pg.Pool, sessionId: string, err: unknown): Promise<false> {
  if (!isUnanswered(err)) throw err;
  // pg reads query_timeout per query too (its types list it only for the client)
  const check = {
    text: SESSION_PRESENT,
    values: [sessionId],
    query_timeout: ERASE_CHECK_MS,
  } as pg.QueryConfig;
  const present = await pool.query(check).catch(() => {
    throw err;
  });
  if (present.rowCount === 0) return false;
  noteNotCommitted(err);
  throw err;
}
