import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { ConfigError, maxEventBytes, parseConfig } from "../../layers/chat/config.ts";
import { chatEvent, toKafkaRecord } from "../../layers/chat/events/cloudevents.ts";
import { chunkRecords, type OutgoingRecord, recordBytes } from "../../layers/chat/events/record-chunks.ts";

// kafkajs's record and record batch encoders, as its produce request uses them.
const require = createRequire(import.meta.url);
const Record = require("kafkajs/src/protocol/recordBatch/record/v0/index.js") as (record: object) => unknown;
const { RecordBatch } = require("kafkajs/src/protocol/recordBatch/v0/index.js") as {
  RecordBatch(batch: { records: unknown[]; lastOffsetDelta: number }): Promise<{ size(): number }>;
};

const rec = (key: string, value: string, headers: Record<string, string> = {}): OutgoingRecord => ({
  topic: "t",
  key,
  value,
  headers,
});

describe("recordBytes", () => {
  it("counts UTF-8 bytes of key, value and headers, plus a fixed overhead per record and header", () => {
    const base = recordBytes(rec("", ""));
    expect(recordBytes(rec("k", "abc"))).toBe(base + 4);
    // é is 2 bytes, 😀 4 bytes in UTF-8 (1 and 2 UTF-16 units)
    expect(recordBytes(rec("", "é😀"))).toBe(base + 6);
    const oneHeader = recordBytes(rec("", "", { ab: "cde" }));
    expect(oneHeader - base).toBeGreaterThan(5);
    expect(recordBytes(rec("", "", { ab: "cde", f: "g" })) - oneHeader).toBe(oneHeader - base - 3);
  });
});

describe("recordBytes against kafkajs's own encoding", () => {
  /** The bytes a partition's record batch (61-byte header included) takes, as kafkajs's producer encodes it. */
  const encoded = async (records: OutgoingRecord[]) => {
    const batch = await RecordBatch({
      // the producer sets no timestamps: kafkajs stamps each request's records alike (delta 0)
      records: records.map((r, i) => Record({ ...r, offsetDelta: i, timestampDelta: 0 })),
      lastOffsetDelta: records.length - 1,
    });
    return batch.size();
  };
  const sid = "7b0c4a4e-1f7e-4c65-9a3e-2b1f3c4d5e6f";
  const message = (content: string) =>
    toKafkaRecord(
      "chat-messages",
      chatEvent("chat.message.created", sid, "2024-05-01T12:00:00.000Z", {
        session_id: sid,
        message_id: "0c9e2b6a-3d4f-4e5a-8b7c-1d2e3f4a5b6c",
        seq: 2,
        role: "user",
        version: 1,
        content,
        reply_to: null,
      }),
    );
  const sessionCreated = toKafkaRecord(
    "chat-messages",
    chatEvent("chat.session.created", sid, "2024-05-01T12:00:00.000Z", { session_id: sid, user_id: null }),
  );

  it("is at least a record's real size alone in its batch (a partition each: the batch header's worst share)", async () => {
    for (const r of [sessionCreated, message("hi"), message("é".repeat(8000))])
      expect(recordBytes(r)).toBeGreaterThanOrEqual(await encoded([r]));
  });

  it("is within 15% of the real size of a batch of short messages, so full runs fill their requests", async () => {
    const records = Array.from({ length: 100 }, (_, i) => message(`message ${i}`));
    const estimate = records.reduce((n, r) => n + recordBytes(r), 0);
    const real = await encoded(records);
    expect(estimate).toBeGreaterThanOrEqual(real);
    expect(estimate).toBeLessThan(real * 1.15);
  });
});

describe("chunkRecords", () => {
  const records = Array.from({ length: 25 }, (_, i) => rec(`s${i % 3}`, "x".repeat(100 + 37 * i)));
  const size = (chunk: OutgoingRecord[]) => chunk.reduce((n, r) => n + recordBytes(r), 0);

  it("keeps every record, in order, in runs no larger than the bound", () => {
    for (const max of [1100, 2500, 10_000]) {
      const chunks = chunkRecords(records, max);
      expect(chunks.flat()).toEqual(records);
      for (const c of chunks) expect(size(c)).toBeLessThanOrEqual(max);
      // greedy: each run is full, i.e. the next run's first record would not have fitted
      for (let i = 0; i + 1 < chunks.length; i++)
        expect(
          size(chunks[i] as OutgoingRecord[]) + recordBytes(chunks[i + 1]?.[0] as OutgoingRecord),
        ).toBeGreaterThan(max);
    }
  });

  it("sends everything at once when it fits, and nothing for no records", () => {
    expect(chunkRecords(records, size(records))).toEqual([records]);
    expect(chunkRecords([], 1000)).toEqual([]);
  });

  it("gives a record larger than the bound a run of its own", () => {
    const big = rec("k", "y".repeat(5000));
    const chunks = chunkRecords([rec("a", "1"), big, rec("b", "2")], 1000);
    expect(chunks).toEqual([[rec("a", "1")], [big], [rec("b", "2")]]);
    // first in the list, it starts the first run: no empty run before it
    expect(chunkRecords([big, rec("b", "2")], 1000)).toEqual([[big], [rec("b", "2")]]);
  });
});

describe("KAFKA_MAX_BATCH_BYTES", () => {
  it("defaults to 1,000,000, under Kafka's 1 MiB default", () => {
    expect(parseConfig({}).KAFKA_MAX_BATCH_BYTES).toBe(1_000_000);
  });

  it("must hold the largest event MAX_CONTENT_CHARS allows: a bad pair fails at start, naming both", () => {
    expect(
      parseConfig({ MAX_CONTENT_CHARS: "1000", KAFKA_MAX_BATCH_BYTES: "10096" }).KAFKA_MAX_BATCH_BYTES,
    ).toBe(10_096);
    expect(() => parseConfig({ MAX_CONTENT_CHARS: "1000", KAFKA_MAX_BATCH_BYTES: "10095" })).toThrow(
      ConfigError,
    );
    expect(() => parseConfig({ KAFKA_MAX_BATCH_BYTES: "40000" })).toThrow(
      /KAFKA_MAX_BATCH_BYTES: must be at least 52096.*MAX_CONTENT_CHARS=8000/,
    );
  });

  it("the bound on an event really bounds the worst content: every character JSON-escaped", () => {
    const max = 500;
    // a control character is the costliest code point in JSON: \u0001 is 6 bytes
    const worst = "\u0001".repeat(max);
    const event = chatEvent("chat.message.created", crypto.randomUUID(), new Date().toISOString(), {
      session_id: crypto.randomUUID(),
      message_id: crypto.randomUUID(),
      seq: 2_000_000_000,
      role: "assistant",
      version: 2_000_000_000,
      content: worst,
      reply_to: crypto.randomUUID(),
    });
    const bytes = recordBytes(toKafkaRecord("chat-messages", event));
    expect(bytes).toBeGreaterThan(max * 6);
    expect(bytes).toBeLessThanOrEqual(maxEventBytes(max));
  });
});

describe("MAX_BODY_BYTES", () => {
  it("defaults to what the longest message needs escaped as ASCII-only JSON, at least 64 KiB", () => {
    expect(parseConfig({}).MAX_BODY_BYTES).toBe(8000 * 12 + 4096);
    expect(parseConfig({ MAX_CONTENT_CHARS: "16000", KAFKA_MAX_BATCH_BYTES: "200000" }).MAX_BODY_BYTES).toBe(
      16000 * 12 + 4096,
    );
    expect(parseConfig({ MAX_CONTENT_CHARS: "100" }).MAX_BODY_BYTES).toBe(65536);
  });

  it("refuses a bound a message of MAX_CONTENT_CHARS could pass, and keeps a larger one", () => {
    expect(() => parseConfig({ MAX_BODY_BYTES: "65536" })).toThrow(/MAX_BODY_BYTES: must be at least 100096/);
    expect(parseConfig({ MAX_BODY_BYTES: "262144" }).MAX_BODY_BYTES).toBe(262144);
  });
});
