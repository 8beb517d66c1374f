import type { CloudEvent } from "../events/cloudevents.ts";
import type { Queryable } from "./chat-store.ts";

/**
 * Erasure in one statement: the session and (by cascade) its messages, its idempotency records and every
 * outbox row that still holds its content go; only the chat.session.erased event is left, to tell consumers.
 * Only if the session row was there: a second erase (a retried DELETE, or the retention purge meeting a
 * user's erase) must not delete the first one's erased event before it is published.
 */
const ERASE = `
WITH s AS (
  DELETE FROM sessions
   WHERE session_id = $1 AND ($4::int IS NULL OR updated_at < now() - make_interval(days => $4::int))
  RETURNING session_id
),
o AS (DELETE FROM outbox WHERE session_id = $1 AND EXISTS (SELECT 1 FROM s)),
i AS (DELETE FROM idempotency_records WHERE scope = 'messages-post:' || $1::text AND EXISTS (SELECT 1 FROM s)),
e AS (
  INSERT INTO outbox (event_id, session_id, event_type, event)
  SELECT $2::uuid, $1, 'chat.session.erased', $3::jsonb FROM s
)
SELECT count(*)::int AS erased FROM s`;

/**
 * True if this call erased the session; false if it was already gone (and then nothing changed).
 * `idleDays`: erase only if the session is still idle that long (the retention purge: the session may have been
 * used since it was selected, and that user's acknowledged turn must not go); false, changing nothing, if not.
 */
export async function eraseSession(
  db: Queryable,
  sessionId: string,
  event: CloudEvent,
  idleDays?: number,
): Promise<boolean> {
  const res = await db.query({
    name: "erase_session",
    text: ERASE,
    values: [sessionId, event.id, JSON.stringify(event), idleDays ?? null],
  });
  return res.rows[0]?.erased === 1;
}
