import type { CloudEvent } from "../events/cloudevents.ts";
import type { Queryable } from "./chat-store.ts";

/**
 * Erasure in one statement: the session and (by cascade) its messages, its idempotency records and every
 * outbox row that still holds its content go; only the chat.session.erased event is left, to tell consumers.
 */
const ERASE = `
WITH s AS (DELETE FROM sessions WHERE session_id = $1 RETURNING session_id),
o AS (DELETE FROM outbox WHERE session_id = $1),
i AS (DELETE FROM idempotency_records WHERE scope = 'messages-post:' || $1::text),
e AS (
  INSERT INTO outbox (event_id, session_id, event_type, event)
  SELECT $2::uuid, $1, 'chat.session.erased', $3::jsonb FROM s
)
SELECT count(*)::int AS erased FROM s`;

export async function eraseSession(db: Queryable, sessionId: string, event: CloudEvent): Promise<boolean> {
  const res = await db.query({
    name: "erase_session",
    text: ERASE,
    values: [sessionId, event.id, JSON.stringify(event)],
  });
  return res.rows[0]?.erased === 1;
}
