import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudEvent, chatEvent, type EventType } from "../../layers/chat/events/cloudevents.ts";
import { applyEvents, readEvent } from "../../layers/chat/projection/activity-projection.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/** applyEvents on real Postgres: per-session counters, the erased mark, the newest time, exactly once per id. */
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(2);
});
afterAll(async () => {
  await db?.drop();
});

const sessionEvent = (type: EventType, session: string, time: string): CloudEvent =>
  type === "chat.session.created" || type === "chat.session.erased"
    ? chatEvent(type, session, time, { session_id: session })
    : chatEvent(type, session, time, {
        session_id: session,
        message_id: randomUUID(),
        seq: 1,
        role: "user",
        version: 1,
        content: "hi",
      });

async function activity(session: string) {
  const { rows } = await db.pool.query(
    `SELECT sessions_created, messages_created, messages_edited, messages_deleted, erased,
            to_char(last_event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS last_event_time
       FROM session_activity WHERE session_id = $1`,
    [session],
  );
  return rows[0];
}

describe("applyEvents", () => {
  it("adds each event type to its own counter, across batches, and keeps sessions apart", async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    const t = "2026-01-01T00:00:00Z";
    const types: EventType[] = [
      "chat.session.created",
      "chat.message.created",
      "chat.message.created",
      "chat.message.created",
      "chat.message.edited",
      "chat.message.edited",
      "chat.message.deleted",
    ];
    // split in two batches: the second must add to what the first wrote, not replace it
    const events = types.map((type) => sessionEvent(type, a, t));
    expect(await applyEvents(db.pool, events.slice(0, 4))).toEqual({ applied: 4, duplicates: 0 });
    expect(await applyEvents(db.pool, events.slice(4))).toEqual({ applied: 3, duplicates: 0 });
    await applyEvents(db.pool, [sessionEvent("chat.message.created", b, t)]);
    // and a third batch after edits and deletes: each counter still adds
    await applyEvents(db.pool, [
      sessionEvent("chat.message.edited", a, t),
      sessionEvent("chat.message.deleted", a, t),
      sessionEvent("chat.message.created", a, t),
    ]);
    expect(await activity(a)).toEqual({
      sessions_created: 1,
      messages_created: 4,
      messages_edited: 3,
      messages_deleted: 2,
      erased: false,
      last_event_time: "2026-01-01T00:00:00Z",
    });
    expect(await activity(b)).toMatchObject({ sessions_created: 0, messages_created: 1, messages_edited: 0 });
  });

  it("counts an id repeated within one batch once", async () => {
    const s = randomUUID();
    const e = sessionEvent("chat.message.created", s, "2026-01-01T00:00:00Z");
    expect(await applyEvents(db.pool, [e, e, { ...e }])).toEqual({ applied: 1, duplicates: 2 });
    expect(await activity(s)).toMatchObject({ messages_created: 1 });
  });

  it("keeps a session erased, and its newest time, whatever order its events arrive in", async () => {
    const s = randomUUID();
    await applyEvents(db.pool, [sessionEvent("chat.session.created", s, "2026-01-01T10:00:00Z")]);
    expect(await activity(s)).toMatchObject({ erased: false });
    await applyEvents(db.pool, [sessionEvent("chat.session.erased", s, "2026-01-01T12:00:00Z")]);
    // a late, older event (e.g. redelivered from a failed batch): the erased mark and the newest time stay,
    // as maintenance deletes an erased session's row by that time
    await applyEvents(db.pool, [sessionEvent("chat.message.deleted", s, "2026-01-01T11:00:00+00:30")]);
    expect(await activity(s)).toEqual({
      sessions_created: 1,
      messages_created: 0,
      messages_edited: 0,
      messages_deleted: 1,
      erased: true,
      last_event_time: "2026-01-01T12:00:00Z",
    });
    // a newer event moves it, compared as instants (15:00+02:00 is 13:00Z; the late one above was 10:30Z)
    await applyEvents(db.pool, [sessionEvent("chat.message.created", s, "2026-01-01T15:00:00+02:00")]);
    expect(await activity(s)).toMatchObject({ erased: true, last_event_time: "2026-01-01T13:00:00Z" });
  });

  it("applies nothing of a batch that fails, so its redelivery applies all of it", async () => {
    const s = randomUUID();
    const ok = sessionEvent("chat.message.created", s, "2026-01-01T00:00:00Z");
    // a subject Postgres refuses as a uuid fails the batch after `ok` was applied in it
    const bad = { ...sessionEvent("chat.message.created", s, "2026-01-01T00:00:00Z"), subject: "not-a-uuid" };
    await expect(applyEvents(db.pool, [ok, bad])).rejects.toThrow(/uuid/);
    expect(await activity(s)).toBeUndefined();
    const { rowCount } = await db.pool.query("SELECT 1 FROM consumed_events WHERE event_id = $1", [ok.id]);
    expect(rowCount).toBe(0);
    expect(await applyEvents(db.pool, [ok])).toEqual({ applied: 1, duplicates: 0 });
  });
});

describe("readEvent's rejections", () => {
  const valid = sessionEvent("chat.session.created", randomUUID(), "2026-01-01T00:00:00Z");

  it("names an empty record as such", () => {
    expect(readEvent("")).toEqual({ rejection: { reason: "empty value" } });
  });

  it("identifies the record by its envelope: strings only, cut to 80 characters", () => {
    const long = `chat.${"x".repeat(200)}`;
    const read = readEvent(JSON.stringify({ ...valid, id: 42, type: long, dataversion: { v: 2 } }));
    expect(read).toEqual({
      rejection: {
        reason: expect.any(String),
        id: undefined,
        type: long.slice(0, 80),
        dataversion: undefined,
      },
    });
  });

  it("gives at most three reasons, and names a value that is no object at all", () => {
    const read = readEvent(
      JSON.stringify({ specversion: "0.3", id: "x", type: "y", subject: "z", time: "t" }),
    );
    const reason = "rejection" in read ? read.rejection.reason : "";
    expect(reason.split("; ")).toHaveLength(3);
    expect(reason).toMatch(/^specversion: /);
    expect(readEvent("42")).toEqual({
      rejection: { reason: "(value): invalid_type", id: undefined, type: undefined, dataversion: undefined },
    });
  });
});
