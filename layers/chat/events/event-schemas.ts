import { extend, literal, omit, required, toJSONSchema } from "zod/mini";
import {
  cloudEventSchema,
  type EventType,
  eventTypes,
  messageEventDataSchema,
  sessionEventDataSchema,
} from "./cloudevents.ts";

/** JSON Schema (2020-12) per event type, generated from the same zod types the producer and consumer use. */
export function eventJsonSchemas(): Record<EventType, Record<string, unknown>> {
  const out = {} as Record<EventType, Record<string, unknown>>;
  for (const type of eventTypes) {
    const data =
      type === "chat.session.created" || type === "chat.session.erased"
        ? sessionEventDataSchema
        : type === "chat.message.deleted"
          ? omit(messageEventDataSchema, { content: true })
          : required(messageEventDataSchema, { content: true });
    const schema = extend(cloudEventSchema, { type: literal(type), data });
    out[type] = {
      $id: `https://chat-backend.example/schemas/events/v1/${type}.json`,
      title: type,
      ...toJSONSchema(schema, { target: "draft-2020-12" }),
    };
  }
  return out;
}
