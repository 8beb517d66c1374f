import { extend, literal, omit, required, toJSONSchema } from "zod/mini";
import {
  cloudEventSchema,
  type EventType,
  eventTypes,
  messageEventDataSchema,
  sessionEventDataSchema,
} from "./cloudevents.ts";

/**
 * Open for extension: zod writes `additionalProperties: false` for its (stripping) objects, but CloudEvents lets
 * intermediaries add extension attributes (`traceparent`, `partitionkey`, …) and a new optional field is an
 * additive change: a consumer validating against a closed schema would reject both. Our own consumer strips
 * unknown keys too.
 */
function openObjects(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(openObjects);
  if (node === null || typeof node !== "object") return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !(key === "additionalProperties" && value === false))
      .map(([key, value]) => [key, openObjects(value)]),
  );
}

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
      ...(openObjects(toJSONSchema(schema, { target: "draft-2020-12" })) as Record<string, unknown>),
    };
  }
  return out;
}
