import { randomUUID } from "node:crypto";
import {
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

export const sessionEventDataSchema = object({
  session_id: uuid(),
  user_id: optional(nullable(string())),
});

export const messageEventDataSchema = object({
  session_id: uuid(),
  message_id: uuid(),
  seq: number().check(int(), positive()),
  role: enumOf(["user", "assistant"]),
  version: number().check(int(), positive()),
  /**
   * Absent on chat.message.deleted: a deleted message's text leaves the system. Empty on a created or edited event
   * published after its message was deleted (the delete redacts them in the outbox); a message is never empty.
   */
  content: optional(string()),
  reply_to: optional(nullable(uuid())),
});

const storableTime = (t: string) => !t.startsWith("0000") && /(?:Z|[+-](?:0\d|1[0-5]):[0-5]\d)$/.test(t);

export const cloudEventSchema = object({
  specversion: literal("1.0"),
  id: uuid(),
  source: string(),
  type: enumOf(eventTypes),
  subject: uuid(),
  // A timestamp Postgres can store (no year 0, offsets within ±15:59): one it refused would fail its consumer's
  // batch for good.
  time: iso.datetime({ offset: true }).check(refine(storableTime, "must be a time Postgres can store")),
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
