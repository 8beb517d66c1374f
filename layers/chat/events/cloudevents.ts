import { randomUUID } from "node:crypto";
import { z } from "zod";

/** CloudEvents 1.0 (structured JSON) on the chat-messages topic. The zod schemas also generate docs/events. */
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

export const sessionEventDataSchema = z.object({
  session_id: z.uuid(),
  user_id: z.string().nullable().optional(),
});

export const messageEventDataSchema = z.object({
  session_id: z.uuid(),
  message_id: z.uuid(),
  seq: z.number().int().positive(),
  role: z.enum(["user", "assistant"]),
  version: z.number().int().positive(),
  /** Absent on chat.message.deleted: a deleted message's text leaves the system. */
  content: z.string().optional(),
  reply_to: z.uuid().nullable().optional(),
});

export const cloudEventSchema = z.object({
  specversion: z.literal("1.0"),
  id: z.uuid(),
  source: z.string(),
  type: z.enum(eventTypes),
  subject: z.uuid(),
  time: z.string(),
  datacontenttype: z.literal("application/json"),
  dataschema: z.string(),
  dataversion: z.literal(EVENT_DATA_VERSION),
  data: z.union([messageEventDataSchema, sessionEventDataSchema]),
});
export type CloudEvent = z.infer<typeof cloudEventSchema>;

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
