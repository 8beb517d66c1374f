import type pg from "pg";
import { withTransaction } from "../db/transaction.ts";
import { type CloudEvent, cloudEventSchema } from "../events/cloudevents.ts";

export interface ProjectionOutcome {
  applied: number;
  duplicates: number;
}

type Counter = "sessions_created" | "messages_created" | "messages_edited" | "messages_deleted";
const COUNTER_OF: Partial<Record<CloudEvent["type"], Counter>> = {
  "chat.session.created": "sessions_created",
  "chat.message.created": "messages_created",
  "chat.message.edited": "messages_edited",
  "chat.message.deleted": "messages_deleted",
};

const UPSERT_ACTIVITY = `
INSERT INTO session_activity (session_id, sessions_created, messages_created, messages_edited, messages_deleted, erased, last_event_time)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (session_id) DO UPDATE SET
  sessions_created = session_activity.sessions_created + EXCLUDED.sessions_created,
  messages_created = session_activity.messages_created + EXCLUDED.messages_created,
  messages_edited = session_activity.messages_edited + EXCLUDED.messages_edited,
  messages_deleted = session_activity.messages_deleted + EXCLUDED.messages_deleted,
  erased = session_activity.erased OR EXCLUDED.erased,
  last_event_time = GREATEST(session_activity.last_event_time, EXCLUDED.last_event_time)`;

/**
 * Per-session activity, kept from the event stream. Exactly once per event id: the id is recorded in the
 * same transaction as the counter change, so a redelivered event changes nothing.
 */
export async function applyEvents(pool: pg.Pool, events: CloudEvent[]): Promise<ProjectionOutcome> {
  const applied = await withTransaction(pool, async (client) => {
    let count = 0;
    for (const e of events) {
      const fresh = await client.query({
        name: "projection_mark_consumed",
        text: "INSERT INTO consumed_events (event_id) VALUES ($1) ON CONFLICT DO NOTHING",
        values: [e.id],
      });
      if (fresh.rowCount === 0) continue;
      const counter = COUNTER_OF[e.type];
      const one = (c: Counter) => (counter === c ? 1 : 0);
      await client.query({
        name: "projection_upsert_activity",
        text: UPSERT_ACTIVITY,
        values: [
          e.subject,
          one("sessions_created"),
          one("messages_created"),
          one("messages_edited"),
          one("messages_deleted"),
          e.type === "chat.session.erased",
          e.time,
        ],
      });
      count++;
    }
    return count;
  });
  return { applied, duplicates: events.length - applied };
}

/**
 * Why a record is not a chat event, and what identifies it in the log: only envelope fields, never `data`
 * (which holds message text). A newer `dataversion` or a new event type lands here too, so the log says which.
 */
export interface Rejection {
  reason: string;
  id?: string;
  type?: string;
  dataversion?: string;
}

export type ReadEvent = { event: CloudEvent } | { rejection: Rejection };

const MAX_REASONS = 3;
const envelopeField = (v: unknown) => (typeof v === "string" ? v.slice(0, 80) : undefined);

/** A record value as a CloudEvent, or why it is not one of ours (skipped and reported: retrying cannot fix it). */
export function readEvent(value: string): ReadEvent {
  if (!value) return { rejection: { reason: "empty value" } };
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    return { rejection: { reason: "not JSON" } };
  }
  const parsed = cloudEventSchema.safeParse(json);
  if (parsed.success) return { event: parsed.data };
  const envelope = (json ?? {}) as Record<string, unknown>;
  const reason = parsed.error.issues
    .slice(0, MAX_REASONS)
    .map((i) => `${i.path.join(".") || "(value)"}: ${i.code}`)
    .join("; ");
  return {
    rejection: {
      reason,
      id: envelopeField(envelope.id),
      type: envelopeField(envelope.type),
      dataversion: envelopeField(envelope.dataversion),
    },
  };
}
