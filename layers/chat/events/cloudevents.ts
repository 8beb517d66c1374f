import { randomUUID } from "node:crypto";
import {
  describe,
  enum as enumOf,
  int,
  iso,
  literal,
  nullable,
  number,
  object,
  optional,
  type output,
  positive,
  refine,
  string,
  union,
  uuid,
} from "zod/mini";
import "../zod-locale.ts";

/** CloudEvents 1.0 (structured JSON) on the chat-messages topic. The zod schemas (zod/mini) also generate docs/events. */
export const EVENT_SOURCE = "/chat-backend";
export const EVENT_DATA_VERSION = "1";
export const EVENT_SCHEMA_BASE = "https://chat-backend.example/schemas/events/v1";

export const eventTypes = [
  "chat.session.created",
  "chat.message.created",
  "chat.message.edited",
  "chat.message.deleted",
  "chat.session.erased",
] as const;
export type EventType = (typeof eventTypes)[number];

// The descriptions below are the event contract's meaning, for consumers: they go into docs/events.
export const sessionEventDataSchema = object({
  session_id: uuid(),
  user_id: optional(nullable(string().check(describe("As the client sent it when it created the session.")))),
});

export const messageEventDataSchema = object({
  session_id: uuid(),
  message_id: uuid(),
  seq: number().check(
    int(),
    positive(),
    describe("The message's place in its session: 1, 2, 3…, never reused."),
  ),
  role: enumOf(["user", "assistant"]),
  version: number().check(
    int(),
    positive(),
    describe(
      "The message's version: 1 when created, one more at each change (an edit, a regenerated reply, the delete). " +
        "Apply a message event only if its version is above the one you hold: replayed or duplicated events are " +
        "then harmless. Keep a deleted message as a tombstone with its version.",
    ),
  ),
  /**
   * Absent on chat.message.deleted: a deleted message's text leaves the system. Empty on a created or edited event
   * published after its message was deleted (the delete redacts them in the outbox); a message is never empty.
   */
  content: optional(
    string().check(
      describe(
        "The message's whole text after this change. Empty only when the message was deleted after this event was " +
          "written (the delete redacted it); its chat.message.deleted event, a later version, follows.",
      ),
    ),
  ),
  reply_to: optional(
    nullable(
      uuid().check(
        describe(
          "On a bot reply: the user message it answers. Null on user messages and on the session's welcome.",
        ),
      ),
    ),
  ),
});

const storableTime = (t: string) => !t.startsWith("0000") && /(?:Z|[+-](?:0\d|1[0-5]):[0-5]\d)$/.test(t);

export const cloudEventSchema = object({
  specversion: literal("1.0"),
  id: uuid(),
  source: string(),
  type: enumOf(eventTypes),
  subject: uuid().check(
    describe("The session's id, also the Kafka record's key: a session's events share a partition."),
  ),
  // A timestamp Postgres can store (no year 0, offsets within ±15:59): one it refused would fail its consumer's
  // batch for good.
  time: iso
    .datetime({ offset: true })
    .check(
      refine(storableTime, "must be a time Postgres can store"),
      describe(
        "When the change was made. A message event's: the message's created_at (created), edited_at (edited) " +
          "or deleted_at (deleted), and the session's updated_at; taken before the bot's reply on a post or a " +
          "regenerating edit, so up to the responder's time before the commit. A session event's: the session's " +
          "created_at, or when the erase ran. Producers send year 0001 or later with an offset within ±15:59.",
      ),
    ),
  datacontenttype: literal("application/json"),
  dataschema: string(),
  dataversion: literal(EVENT_DATA_VERSION),
  data: union([messageEventDataSchema, sessionEventDataSchema]),
});
export type CloudEvent = output<typeof cloudEventSchema>;

export function chatEvent(
  type: EventType,
  sessionId: string,
  time: string,
  data: CloudEvent["data"],
): CloudEvent {
  return {
    specversion: "1.0",
    id: randomUUID(),
    source: EVENT_SOURCE,
    type,
    subject: sessionId,
    time,
    datacontenttype: "application/json",
    dataschema: `${EVENT_SCHEMA_BASE}/${type}.json`,
    dataversion: EVENT_DATA_VERSION,
    data,
  };
}

/** The Kafka record for an event: keyed by session so a session's events share a partition, in order. */
export function toKafkaRecord(topic: string, event: CloudEvent) {
  return {
    topic,
    key: event.subject,
    value: JSON.stringify(event),
    headers: {
      ce_id: event.id,
      ce_type: event.type,
      ce_specversion: event.specversion,
      ce_source: event.source,
      "content-type": "application/cloudevents+json; charset=UTF-8",
    },
  };
}
