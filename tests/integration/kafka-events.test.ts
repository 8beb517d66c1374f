import { readFileSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import type { MSKEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CloudEvent } from "../../layers/chat/events/cloudevents.ts";
import { disconnectProducer, getProducer } from "../../layers/chat/events/kafka-producer.ts";
import {
  kafkaPing,
  kafkaPublisher,
  producerSettings,
  publishEvents,
} from "../../layers/chat/events/kafka-runtime.ts";
import { relayOutbox } from "../../layers/chat/events/outbox-relay.ts";
import { applyEvents, readEvent } from "../../layers/chat/projection/activity-projection.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";
import { type MockKafka, readTopic, startMockKafka } from "../helpers/kafka-mock-cluster.ts";

const TOPIC = "chat-messages";
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
let kafka: MockKafka;
let f: ChatFixture;

beforeAll(async () => {
  kafka = startMockKafka({ brokers: 3, topics: [{ name: TOPIC, partitions: 4 }] });
  f = await chatFixture({
    // a small produce-request bound, so that a backlog of long messages needs several requests
    env: {
      KAFKA_BROKERS: kafka.bootstrap,
      KAFKA_PUBLISH_TIMEOUT_MS: "1000",
      KAFKA_MAX_BATCH_BYTES: "100000",
    },
    publisher: kafkaPublisher,
  });
});
afterAll(async () => {
  await disconnectProducer();
  await f.close();
  kafka.stop();
});

/** Stops reading once every outbox event of these sessions has arrived. */
async function readSessions(sessionIds: string[]) {
  const expected = await f.db.pool.query("SELECT event_id FROM outbox WHERE session_id = ANY($1::uuid[])", [
    sessionIds,
  ]);
  const want = new Set(expected.rows.map((r) => r.event_id as string));
  return readTopic(kafka.bootstrap, TOPIC, {
    timeoutMs: 20_000,
    until: (recs) => {
      const seen = new Set(recs.map((r) => r.headers.ce_id));
      for (const id of want) if (!seen.has(id)) return false;
      return true;
    },
  });
}

const events = (records: { value: string | null }[]) =>
  records.map((r) => JSON.parse(r.value ?? "null") as CloudEvent);
const pendingCount = async () =>
  (await f.db.pool.query("SELECT count(*)::int AS n FROM outbox_pending")).rows[0].n as number;

/** Dedupe by event id keeping the first copy: what a consumer that dedupes sees. */
const firstCopies = (all: CloudEvent[]) => {
  const seen = new Set<string>();
  return all.filter((e) => {
    if (seen.has(e.id)) return false;
    seen.add(e.id);
    return true;
  });
};

describe("events on chat-messages", () => {
  it("publishes exactly the right event for every change: type, key, data, CloudEvents headers", async () => {
    const created = await f.chat.createSession({ user_id: "u-events" });
    const id = created.session.session_id;
    const auth = () => f.chat.authorize(id, created.token);
    const turn = await f.chat.postMessage(await auth(), "hello kafka");
    await f.chat.editMessage(await auth(), { message_id: turn.message.message_id, content: "hello again" });
    await f.chat.deleteMessage(await auth(), turn.message.message_id);
    await f.chat.eraseSession(await auth());

    const all = (await readSessions([id])).filter((r) => r.key === id);
    expect(all.map((r) => r.headers.ce_type)).toEqual([
      "chat.session.created",
      "chat.message.created",
      "chat.message.created",
      "chat.message.created",
      "chat.message.edited",
      "chat.message.deleted",
      "chat.session.erased",
    ]);
    for (const r of all) {
      const e = JSON.parse(r.value ?? "null") as CloudEvent;
      expect(readEvent(r.value ?? "")).toEqual({ event: e });
      // the ce_* headers let a consumer route without parsing the value: each must match the event
      expect(r.headers).toMatchObject({
        ce_id: e.id,
        ce_type: e.type,
        ce_specversion: "1.0",
        ce_source: "/chat-backend",
      });
      expect(r.headers["content-type"]).toMatch(/^application\/cloudevents\+json/);
      expect(e.subject).toBe(id);
    }
    const [, welcome, user, bot, edited, deleted] = events(all);
    expect(welcome?.data).toMatchObject({ seq: 1, role: "assistant", version: 1 });
    expect(user?.data).toMatchObject({
      seq: 2,
      role: "user",
      content: "hello kafka",
      message_id: turn.message.message_id,
    });
    expect(bot?.data).toMatchObject({ seq: 3, role: "assistant", reply_to: turn.message.message_id });
    expect(edited?.data).toMatchObject({ version: 2, content: "hello again" });
    // a delete is a version of its own: a consumer keeping the newest applies it after edited v2
    expect(deleted?.data).toMatchObject({ message_id: turn.message.message_id, seq: 2, version: 3 });
    expect(deleted?.data).not.toHaveProperty("content");
    expect(await pendingCount()).toBe(0);
  });

  it("200 posts across 10 sessions arrive in seq order per session, none missing or duplicated", async () => {
    const sessions = await Promise.all(Array.from({ length: 10 }, () => f.chat.createSession({})));
    await Promise.all(
      sessions.map(async (s) => {
        for (let i = 0; i < 20; i++)
          await f.chat.postMessage(await f.chat.authorize(s.session.session_id, s.token), `m${i}`);
      }),
    );
    const ids = new Set(sessions.map((s) => s.session.session_id));
    const all = firstCopies(events(await readSessions([...ids])).filter((e) => ids.has(e.subject)));
    for (const s of sessions) {
      const seqs = all
        .filter((e) => e.subject === s.session.session_id && e.type === "chat.message.created")
        .map((e) => (e.data as { seq: number }).seq);
      expect(seqs).toEqual(Array.from({ length: 41 }, (_, i) => i + 1));
    }
  });
});

describe("Kafka down", () => {
  it("100 posts while every broker is down all succeed within the bound; one relay run then publishes every missed event in order", async () => {
    const s = await f.chat.createSession({});
    const id = s.session.session_id;
    const before = await pendingCount();
    kafka.setAllDown();
    const times: number[] = [];
    try {
      for (let i = 0; i < 100; i++) {
        const t0 = performance.now();
        await f.chat.postMessage(await f.chat.authorize(id, s.token), `down ${i}`);
        times.push(performance.now() - t0);
      }
    } finally {
      kafka.setAllUp();
    }
    expect(Math.max(...times)).toBeLessThan(f.config.KAFKA_PUBLISH_TIMEOUT_MS + 500);
    expect(await pendingCount()).toBe(before + 200);
    const run = await relayOutbox(f.db.pool, (ev) => publishEvents(f.config, ev, 10_000), {
      batchSize: 500,
      batchBytes: f.config.KAFKA_MAX_BATCH_BYTES,
      timeBudgetMs: 30_000,
    });
    expect(run).toMatchObject({ skipped: false, published: before + 200 });
    expect(await pendingCount()).toBe(0);
    const seqs = firstCopies(events(await readSessions([id])))
      .filter((e) => e.subject === id && e.type === "chat.message.created")
      .map((e) => (e.data as { seq: number }).seq);
    expect(seqs).toEqual(Array.from({ length: 201 }, (_, i) => i + 1));
  });

  it("a backlog of long messages goes out in produce requests within KAFKA_MAX_BATCH_BYTES, in order", async () => {
    const s = await f.chat.createSession({});
    const id = s.session.session_id;
    kafka.setAllDown();
    try {
      // ≈ 14 KB per user message event (é is 2 bytes): ≈ 280 KB of events, one session, one partition
      for (let i = 0; i < 20; i++)
        await f.chat.postMessage(await f.chat.authorize(id, s.token), `${i} ${"é".repeat(7000)}`);
    } finally {
      kafka.setAllUp();
    }
    const producer = await getProducer(await producerSettings(f.config));
    const produceSizes: number[] = [];
    const stop = producer.on(producer.events.REQUEST, (e) => {
      if (e.payload.apiName === "Produce") produceSizes.push(e.payload.size);
    });
    try {
      const run = await relayOutbox(f.db.pool, (ev) => publishEvents(f.config, ev, 10_000), {
        batchSize: 500,
        batchBytes: f.config.KAFKA_MAX_BATCH_BYTES,
        timeBudgetMs: 30_000,
      });
      expect(run.error).toBeUndefined();
    } finally {
      stop();
    }
    expect(await pendingCount()).toBe(0);
    expect(produceSizes.length).toBeGreaterThanOrEqual(3);
    for (const size of produceSizes) expect(size).toBeLessThanOrEqual(f.config.KAFKA_MAX_BATCH_BYTES);
    const seqs = firstCopies(events(await readSessions([id])))
      .filter((e) => e.subject === id && e.type === "chat.message.created")
      .map((e) => (e.data as { seq: number }).seq);
    expect(seqs).toEqual(Array.from({ length: 41 }, (_, i) => i + 1));
  });

  it("a message deleted while its events wait for the brokers: they go out without its text, still valid events", async () => {
    const s = await f.chat.createSession({});
    const id = s.session.session_id;
    const auth = () => f.chat.authorize(id, s.token);
    let messageId = "";
    kafka.setAllDown();
    try {
      const turn = await f.chat.postMessage(await auth(), "my card is 4111 while down");
      messageId = turn.message.message_id;
      await f.chat.editMessage(await auth(), {
        message_id: messageId,
        content: "my card is 4242 while down",
      });
      await f.chat.deleteMessage(await auth(), messageId);
    } finally {
      kafka.setAllUp();
    }
    const run = await relayOutbox(f.db.pool, (ev) => publishEvents(f.config, ev, 10_000), {
      batchSize: 500,
      batchBytes: f.config.KAFKA_MAX_BATCH_BYTES,
      timeBudgetMs: 30_000,
    });
    expect(run.error).toBeUndefined();
    const records = (await readSessions([id])).filter((r) => r.key === id);
    const mine = firstCopies(events(records)).filter(
      (e) => (e.data as { message_id?: string }).message_id === messageId,
    );
    // still published, as consumers count creations and edits, but with the content redacted
    expect(
      mine.map((e) => [
        e.type,
        (e.data as { version: number }).version,
        (e.data as { content?: string }).content,
      ]),
    ).toEqual([
      ["chat.message.created", 1, ""],
      ["chat.message.edited", 2, ""],
      ["chat.message.deleted", 3, undefined],
    ]);
    // (the bot's reply, a message of its own, quotes the text: deleting it is the user's to do)
    for (const e of mine) expect(JSON.stringify(e)).not.toMatch(/4111|4242/);
    const ajv = new Ajv2020({ strict: false });
    addFormats(ajv);
    for (const e of mine) {
      const schema = JSON.parse(
        readFileSync(new URL(`../../docs/events/${e.type}.json`, import.meta.url), "utf8"),
      );
      const validate = ajv.compile(schema);
      expect(validate(e), JSON.stringify(validate.errors)).toBe(true);
      expect(readEvent(JSON.stringify(e))).toEqual({ event: e });
    }
  });

  it("two relays at once never publish an event twice between them", async () => {
    const s = await f.chat.createSession({});
    kafka.setAllDown();
    try {
      for (let i = 0; i < 30; i++)
        await f.chat.postMessage(await f.chat.authorize(s.session.session_id, s.token), `r${i}`);
    } finally {
      kafka.setAllUp();
    }
    // the session's own create events may also be waiting (the fast path backs off after the last outage)
    const pending = await pendingCount();
    expect(pending).toBeGreaterThanOrEqual(60);
    const published: string[] = [];
    const publish = async (ev: CloudEvent[]) => {
      published.push(...ev.map((e) => e.id));
      await publishEvents(f.config, ev, 10_000);
    };
    const [a, b] = await Promise.all([
      relayOutbox(f.db.pool, publish, { batchSize: 7, batchBytes: 1_000_000, timeBudgetMs: 30_000 }),
      relayOutbox(f.db.pool, publish, { batchSize: 7, batchBytes: 1_000_000, timeBudgetMs: 30_000 }),
    ]);
    expect(a.published + b.published).toBe(pending);
    expect(await pendingCount()).toBe(0);
    expect(new Set(published).size).toBe(published.length);
    expect([a.skipped, b.skipped].filter(Boolean).length).toBeLessThanOrEqual(1);
  });
});

describe("health of Kafka", () => {
  it("reports ok while brokers answer and down while they are all away", async () => {
    expect((await kafkaPing(f.config, 1000)).status).toBe("ok");
    kafka.setAllDown();
    try {
      expect((await kafkaPing(f.config, 500)).status).toBe("down");
    } finally {
      kafka.setAllUp();
    }
  });
});

describe("events-consumer projection", () => {
  it("applies the committed MSK fixture exactly once, however often it is redelivered", async () => {
    const fixture = JSON.parse(
      readFileSync(new URL("../fixtures/events/events-consumer.json", import.meta.url), "utf8"),
    ) as MSKEvent;
    const evs = Object.values(fixture.records)
      .flat()
      .map((r) => readEvent(Buffer.from(r.value, "base64").toString("utf8")))
      .flatMap((read) => ("event" in read ? [read.event] : []));
    expect(evs.length).toBeGreaterThan(0);
    const first = await applyEvents(f.db.pool, evs);
    const again = await applyEvents(f.db.pool, evs);
    expect(first).toEqual({ applied: evs.length, duplicates: 0 });
    expect(again).toEqual({ applied: 0, duplicates: evs.length });
    const subject = evs[0]?.subject;
    const row = await f.db.pool.query("SELECT * FROM session_activity WHERE session_id = $1", [subject]);
    const created = evs.filter((e) => e.subject === subject && e.type === "chat.message.created").length;
    expect(row.rows[0].messages_created).toBe(created);
  });
});
