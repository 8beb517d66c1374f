import { Kafka, logLevel } from "kafkajs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  disconnectProducer,
  getProducer,
  KafkaTimeoutError,
  type OutgoingRecord,
  type ProducerSettings,
  pingKafka,
  publishRecords,
} from "../../layers/chat/events/kafka-producer.ts";
import { type MockKafka, readTopic, startMockKafka } from "../helpers/kafka-mock-cluster.ts";
import { loadLibrdkafka } from "../helpers/librdkafka-ffi.ts";

// Kafka protocol API keys and error codes used with pushRequestErrors.
const PRODUCE = 0;
const NOT_LEADER_OR_FOLLOWER = 6;
const MESSAGE_TOO_LARGE = 10;

let mock: MockKafka;
let config: ProducerSettings;
const unhandled: unknown[] = [];
// kafkajs warnings/errors land here instead of stderr; checked for leaked payloads at the end.
const kafkaLogs: string[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

const record = (
  topic: string,
  key: string,
  value: string,
  headers: Record<string, string> = {},
): OutgoingRecord => ({
  topic,
  key,
  value,
  headers,
});

/** Runs fn and returns how long it took to settle, plus the error it rejected with. */
async function timed(fn: () => Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const started = performance.now();
  try {
    await fn();
    return { ms: performance.now() - started, error: undefined };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}

beforeAll(() => {
  process.on("unhandledRejection", onUnhandled);
  mock = startMockKafka({ brokers: 3, topics: [{ name: "chat-ordered", partitions: 3 }] });
  config = {
    brokers: mock.brokers,
    clientId: "kafka-mock-test",
    ssl: false,
    auth: "none",
    compression: "gzip",
    log: (level, message, fields) => kafkaLogs.push(JSON.stringify({ level, message, ...fields })),
  };
});

afterEach(async () => {
  mock.setAllUp();
  await disconnectProducer();
});

afterAll(() => {
  mock?.stop();
  process.off("unhandledRejection", onUnhandled);
  // Late failures of abandoned sends/connects must have been swallowed, not left unhandled.
  expect(unhandled).toEqual([]);
  // The outage tests do produce connection errors; none may carry a record value.
  expect(kafkaLogs.length).toBeGreaterThan(0);
  expect(kafkaLogs.filter((l) => /during|slow|rejected/.test(l))).toEqual([]);
});

describe("librdkafka mock cluster", () => {
  it("fails loudly when librdkafka cannot be loaded", () => {
    expect(() => loadLibrdkafka("/nonexistent/librdkafka.so.1")).toThrow(/cannot load librdkafka.*apt-get/);
  });

  it("starts with one address per broker and creates topics with the asked partition count", async () => {
    expect(mock.brokers).toHaveLength(3);
    expect(mock.bootstrap).toBe(mock.brokers.join(","));
    mock.createTopic("chat-created", 5);
    const admin = new Kafka({ brokers: mock.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: ["chat-created"] });
      expect(topics[0]?.partitions).toHaveLength(5);
    } finally {
      await admin.disconnect();
    }
  });

  it("delivers keyed, gzip-compressed records with headers, in order per key", async () => {
    const keys = ["session-a", "session-b", "session-c"];
    const sent = keys.flatMap((key) =>
      [0, 1, 2, 3].map((i) =>
        record("chat-ordered", key, `${key}#${i}`, { "event-type": "message", seq: `${i}` }),
      ),
    );
    // Two calls, so order must also hold across sends on the reused producer.
    await publishRecords(sent.slice(0, 6), { timeoutMs: 2000, config });
    await publishRecords(sent.slice(6), { timeoutMs: 2000 });

    const got = await readTopic(mock.bootstrap, "chat-ordered", { count: sent.length, timeoutMs: 15_000 });
    expect(got).toHaveLength(sent.length);
    for (const key of keys) {
      const mine = got.filter((r) => r.key === key);
      expect(new Set(mine.map((r) => r.partition)).size).toBe(1);
      const inOffsetOrder = mine.toSorted((a, b) => Number(a.offset) - Number(b.offset));
      expect(inOffsetOrder.map((r) => r.value)).toEqual([0, 1, 2, 3].map((i) => `${key}#${i}`));
      expect(inOffsetOrder.map((r) => r.headers)).toEqual(
        [0, 1, 2, 3].map((i) => ({ "event-type": "message", seq: `${i}` })),
      );
    }
  });

  it("sends a publish larger than maxBatchBytes as produce requests within the bound, each key in order", async () => {
    // A broker refuses a record batch over its max.message.bytes whatever the retries; the mock accepts
    // anything, so the bound is checked on the requests the producer sends.
    mock.createTopic("chat-large", 2);
    const maxBatchBytes = 60_000;
    const bounded = { ...config, compression: "none" as const, maxBatchBytes };
    const producer = await getProducer(bounded);
    const produceSizes: number[] = [];
    const stop = producer.on(producer.events.REQUEST, (e) => {
      if (e.payload.apiName === "Produce") produceSizes.push(e.payload.size);
    });
    try {
      // 2 keys × 15 records of ≈ 9 KB (é is 2 bytes): ≈ 280 KB in all, ≈ 140 KB per partition
      const sent = Array.from({ length: 30 }, (_, i) =>
        record("chat-large", `key-${i % 2}`, `${i}:${"é".repeat(4500)}`, { seq: `${i}` }),
      );
      await publishRecords(sent, { timeoutMs: 5000, config: bounded });
      expect(produceSizes.length).toBeGreaterThanOrEqual(5);
      for (const size of produceSizes) expect(size).toBeLessThanOrEqual(maxBatchBytes);

      const got = await readTopic(mock.bootstrap, "chat-large", { count: sent.length, timeoutMs: 15_000 });
      for (const key of ["key-0", "key-1"]) {
        const mine = got
          .filter((r) => r.key === key)
          .toSorted((a, b) => Number(a.offset) - Number(b.offset))
          .map((r) => Number(r.headers.seq));
        expect(mine).toEqual(sent.filter((r) => r.key === key).map((r) => Number(r.headers.seq)));
      }
    } finally {
      stop();
    }
  });

  it("fails a bounded publish fast while brokers are down, and recovers when they are up", async () => {
    await publishRecords([record("chat-outage", "k", "before")], { timeoutMs: 2000, config });

    mock.setAllDown();
    const down = await timed(() =>
      publishRecords([record("chat-outage", "k", "during")], { timeoutMs: 500 }),
    );
    expect(down.error).toBeInstanceOf(Error);
    expect(down.ms).toBeLessThan(800);
    // A fresh connect (the failed producer was dropped) is bounded too.
    const again = await timed(() =>
      publishRecords([record("chat-outage", "k", "during-2")], { timeoutMs: 500 }),
    );
    expect(again.error).toBeInstanceOf(Error);
    expect(again.ms).toBeLessThan(800);

    mock.setAllUp();
    await publishRecords([record("chat-outage", "k", "after")], { timeoutMs: 2000 });
    const values = (await readTopic(mock.bootstrap, "chat-outage", { count: 2 })).map((r) => r.value);
    expect(values[0]).toBe("before");
    expect(values.at(-1)).toBe("after");
  });

  it("does not keep a failed first connect: the next publish connects again", async () => {
    mock.setAllDown();
    const failed = await timed(() =>
      publishRecords([record("chat-reconnect", "k", "lost")], { timeoutMs: 500, config }),
    );
    expect(failed.error).toBeInstanceOf(Error);
    expect(failed.ms).toBeLessThan(800);

    mock.setAllUp();
    await publishRecords([record("chat-reconnect", "k", "kept")], { timeoutMs: 2000 });
  });

  it("times out a publish to a slow cluster with a clear error, then works once it is fast again", async () => {
    await publishRecords([record("chat-slow", "k", "warm-up")], { timeoutMs: 2000, config });
    for (const id of [1, 2, 3]) mock.setRtt(id, 1500);
    const slow = await timed(() => publishRecords([record("chat-slow", "k", "slow")], { timeoutMs: 300 }));
    expect(slow.error).toBeInstanceOf(KafkaTimeoutError);
    expect((slow.error as Error).message).toMatch(/timed out after 300 ms/);
    expect(slow.ms).toBeLessThan(600);

    for (const id of [1, 2, 3]) mock.setRtt(id, 0);
    await publishRecords([record("chat-slow", "k", "fast")], { timeoutMs: 2000 });
  });

  it("retries a retriable produce error and surfaces a non-retriable one", async () => {
    await publishRecords([record("chat-errors", "k", "warm-up")], { timeoutMs: 2000, config });
    mock.pushRequestErrors(PRODUCE, [NOT_LEADER_OR_FOLLOWER]);
    await publishRecords([record("chat-errors", "k", "retried")], { timeoutMs: 2000 });

    mock.pushRequestErrors(PRODUCE, [MESSAGE_TOO_LARGE]);
    await expect(
      publishRecords([record("chat-errors", "k", "rejected")], { timeoutMs: 2000 }),
    ).rejects.toThrow(/larger than the max message size/);
    // The next call reconnects and succeeds.
    await publishRecords([record("chat-errors", "k", "next")], { timeoutMs: 2000 });
  });

  it("pings ok while up, and down within the bound while all brokers are down", async () => {
    // First connect fails: the next ping must connect again rather than reuse the failure.
    mock.setAllDown();
    const never = await pingKafka(500, config);
    expect(never).toMatchObject({ status: "down" });
    expect(never.latency_ms).toBeLessThan(800);
    mock.setAllUp();
    const up = await pingKafka(1000);
    expect(up.status).toBe("ok");
    expect(up.latency_ms).toBeLessThan(1000);

    // Connected, then the cluster goes away.
    mock.setAllDown();
    const down = await pingKafka(500);
    expect(down.status).toBe("down");
    expect(down.latency_ms).toBeLessThan(800);
    mock.setAllUp();
    expect((await pingKafka(1000)).status).toBe("ok");
  });
});
