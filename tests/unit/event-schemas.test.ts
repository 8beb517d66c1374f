import { readFileSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { describe, expect, it } from "vitest";
import {
  chatEvent,
  cloudEventSchema,
  eventTypes,
  toKafkaRecord,
} from "../../layers/chat/events/cloudevents.ts";
import { eventJsonSchemas } from "../../layers/chat/events/event-schemas.ts";

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

describe("event schemas", () => {
  it("docs/events holds the current JSON Schema of every event type (run `npm run docs` after changing the zod types)", () => {
    const generated = eventJsonSchemas();
    for (const type of eventTypes) {
      const committed = JSON.parse(
        readFileSync(new URL(`../../docs/events/${type}.json`, import.meta.url), "utf8"),
      );
      expect(committed).toEqual(JSON.parse(JSON.stringify(generated[type])));
    }
  });

  it("documents content on created and edited events and none on deleted ones", () => {
    const s = eventJsonSchemas();
    const props = (t: (typeof eventTypes)[number]) =>
      (s[t].properties as Record<string, { properties?: Record<string, unknown>; required?: string[] }>)
        .data ?? {};
    expect(props("chat.message.created").required).toContain("content");
    expect(props("chat.message.edited").required).toContain("content");
    expect(Object.keys(props("chat.message.deleted").properties ?? {})).not.toContain("content");
  });

  it("declares on an erased or deleted event only the fields its producer sends: no user_id, text or reply link", () => {
    const s = eventJsonSchemas();
    const fields = (t: (typeof eventTypes)[number]) =>
      Object.keys(
        (s[t].properties as Record<string, { properties?: Record<string, unknown> }>).data?.properties ?? {},
      ).sort();
    // the erase exists to remove the user_id: a consumer reading the schema would look for it here
    expect(fields("chat.session.erased")).toEqual(["session_id"]);
    expect(fields("chat.message.deleted")).toEqual(["message_id", "role", "seq", "session_id", "version"]);
  });

  it("tells a consumer of chat.session.erased to delete what it holds of the session, not only to drop later events", () => {
    const erased = String(eventJsonSchemas()["chat.session.erased"].description);
    // a replica that only kept the erased mark went on holding the user's text and user_id after the erase
    expect(erased).toMatch(/delete/i);
    expect(erased).toContain("user_id");
    expect(erased).toMatch(/text/);
  });

  it("accepts what CloudEvents allows on top: extension attributes and new optional data fields", () => {
    const ajv = new Ajv2020({ strict: false });
    addFormats(ajv);
    const sid = "7b0c4a4e-1f7e-4c65-9a3e-2b1f3c4d5e6f";
    const e = chatEvent("chat.session.created", sid, new Date().toISOString(), {
      session_id: sid,
      user_id: null,
    });
    const validate = ajv.compile(eventJsonSchemas()["chat.session.created"]);
    expect(validate(e), JSON.stringify(validate.errors)).toBe(true);
    const extended = { ...e, traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" };
    expect(validate(extended), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ ...e, data: { ...e.data, locale: "en" } }), JSON.stringify(validate.errors)).toBe(true);
    // still a schema: a wrong type is refused
    expect(validate({ ...e, specversion: 1 })).toBe(false);
  });

  it("builds CloudEvents 1.0 envelopes keyed by session, with ce_* headers", () => {
    const sid = "7b0c4a4e-1f7e-4c65-9a3e-2b1f3c4d5e6f";
    const e = chatEvent("chat.session.created", sid, new Date().toISOString(), {
      session_id: sid,
      user_id: null,
    });
    expect(cloudEventSchema.parse(e)).toEqual(e);
    const record = toKafkaRecord("chat-messages", e);
    expect(record.key).toBe(sid);
    expect(record.headers).toMatchObject({
      ce_id: e.id,
      ce_type: e.type,
      ce_specversion: "1.0",
      ce_source: "/chat-backend",
    });
    expect(JSON.parse(record.value)).toEqual(e);
  });

  it("points each event's dataschema at the published JSON Schema of its own type", () => {
    const sid = "7b0c4a4e-1f7e-4c65-9a3e-2b1f3c4d5e6f";
    const schemas = eventJsonSchemas();
    for (const type of eventTypes) {
      const e = chatEvent(type, sid, new Date().toISOString(), { session_id: sid });
      expect(e.dataschema).toBe(`https://chat-backend.example/schemas/events/v1/${type}.json`);
      // a consumer fetching dataschema gets the schema written to docs/events for this type
      expect(e.dataschema).toBe(schemas[type].$id);
    }
  });

  it("takes a time offset Postgres can store (up to ±15:59) and refuses ±16:00, which zod's datetime allows", () => {
    const sid = "7b0c4a4e-1f7e-4c65-9a3e-2b1f3c4d5e6f";
    const at = (time: string) =>
      cloudEventSchema.safeParse(chatEvent("chat.session.created", sid, time, { session_id: sid })).success;
    expect(at("2024-05-01T12:00:00+15:59")).toBe(true);
    expect(at("2024-05-01T12:00:00-15:59")).toBe(true);
    // Postgres refuses these: the event would fail its consumer's batch for good
    expect(at("2024-05-01T12:00:00+16:00")).toBe(false);
    expect(at("2024-05-01T12:00:00-16:00")).toBe(false);
  });
});
