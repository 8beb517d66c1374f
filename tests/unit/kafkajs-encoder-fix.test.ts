import { createRequire } from "node:module";
import { afterEach, describe, expect, it, vi } from "vitest";
import { toKafkaRecord } from "../../layers/chat/events/cloudevents.ts";
import { kafkajsOriginals } from "../../layers/chat/events/kafkajs-encoder-fix.ts";
import "../../layers/chat/events/kafka-client.ts";

// kafkajs's own modules, as its producer loads them (the same instances the fix patched).
const require = createRequire(import.meta.url);
type Enc = {
  buffer: Buffer;
  writeUVarInt(v: unknown): Enc;
  writeVarInt(v: unknown): Enc;
  writeVarLong(v: unknown): Enc;
  writeVarIntString(v: string): Enc;
  writeVarIntBytes(v: string | Buffer): Enc;
  writeInt64(v: unknown): Enc;
};
const Encoder = require("kafkajs/src/protocol/encoder.js") as {
  new (): Enc;
  prototype: Record<string, unknown>;
  sizeOfVarLong(v: unknown): number;
  nextPowerOfTwo(v: number): number;
};
const Long = require("kafkajs/src/utils/long.js") as { fromString(s: string): unknown };
const Produce = require("kafkajs/src/protocol/requests/produce/v3/request.js") as (args: unknown) => {
  encode(): Promise<Enc>;
};

const patched = {
  ensureAvailable: Encoder.prototype.ensureAvailable,
  writeUVarInt: Encoder.prototype.writeUVarInt,
  writeVarInt: Encoder.prototype.writeVarInt,
  writeVarLong: Encoder.prototype.writeVarLong,
  sizeOfVarLong: Encoder.sizeOfVarLong,
  nextPowerOfTwo: Encoder.nextPowerOfTwo,
};

/** Runs fn with kafkajs's own encoder methods back in place. */
async function withOriginals<T>(fn: () => T | Promise<T>): Promise<T> {
  Object.assign(Encoder.prototype, {
    ensureAvailable: kafkajsOriginals.ensureAvailable,
    writeUVarInt: kafkajsOriginals.writeUVarInt,
    writeVarInt: kafkajsOriginals.writeVarInt,
    writeVarLong: kafkajsOriginals.writeVarLong,
  });
  Encoder.sizeOfVarLong = kafkajsOriginals.sizeOfVarLong;
  Encoder.nextPowerOfTwo = kafkajsOriginals.nextPowerOfTwo;
  try {
    return await fn();
  } finally {
    const { sizeOfVarLong, nextPowerOfTwo, ...methods } = patched;
    Object.assign(Encoder.prototype, methods);
    Encoder.sizeOfVarLong = sizeOfVarLong;
    Encoder.nextPowerOfTwo = nextPowerOfTwo;
  }
}

const ints = [
  0,
  1,
  -1,
  2,
  -2,
  63,
  -64,
  64,
  -65,
  127,
  128,
  255,
  300,
  -300,
  2 ** 14 - 1,
  2 ** 14,
  2 ** 21,
  -(2 ** 21),
  2 ** 28,
  2 ** 30 - 1,
  -(2 ** 30),
  2 ** 30,
  -(2 ** 30) - 1,
  2 ** 31 - 1,
  -(2 ** 31),
  2 ** 32 - 1,
  2 ** 32,
  2 ** 40,
  -(2 ** 40),
  1.5,
  -0.5,
  Number.MAX_SAFE_INTEGER,
  1_764_201_600_000,
];
const longs = [
  ...ints.filter(Number.isInteger),
  Long.fromString("9223372036854775807"),
  Long.fromString("-5"),
];

describe("kafkajs encoder fix", () => {
  afterEach(() => vi.restoreAllMocks());

  it("is installed on the Encoder kafkajs's producer uses", () => {
    expect(Encoder.prototype.writeUVarInt).not.toBe(kafkajsOriginals.writeUVarInt);
    expect(Encoder.prototype.writeVarLong).not.toBe(kafkajsOriginals.writeVarLong);
    expect(Encoder.sizeOfVarLong).not.toBe(kafkajsOriginals.sizeOfVarLong);
    // a new encoder holds no zero-filled buffer until its first write
    expect((new Encoder() as unknown as { buf: Buffer }).buf.length).toBe(0);
    expect(Encoder.nextPowerOfTwo(1000)).toBe(1024);
  });

  it("writes kafkajs's bytes with every method, starting from an empty encoder", async () => {
    const inner = () => new Encoder().writeVarIntString("inner");
    const calls: [string, unknown[]][] = [
      ["writeInt8", [-7]],
      ["writeInt16", [-300]],
      ["writeInt32", [-70_000]],
      ["writeUInt32", [4_000_000_000]],
      ["writeInt64", [Long.fromString("-123456789012345")]],
      ["writeDouble", [1.25]],
      ["writeBoolean", [true]],
      ["writeString", ["é quoted"]],
      ["writeString", [null]],
      ["writeVarIntString", ["chat"]],
      ["writeUVarIntString", ["chat"]],
      ["writeBytes", [Buffer.from([1, 2, 3])]],
      ["writeBytes", ["text"]],
      ["writeVarIntBytes", [Buffer.alloc(600, 9)]],
      ["writeUVarIntBytes", ["x".repeat(700)]],
      ["writeNullableArray", [[]]],
      ["writeNullableArray", [[1, 2], "int32"]],
      ["writeBuffer", [Buffer.from("raw")]],
      ["writeEncoderArray", [[inner(), inner()]]],
      ["writeUVarIntArray", [[inner()]]],
      ["writeArray", [["a", "b"], "string"]],
      ["writeVarIntArray", [[inner(), inner()]]],
      ["writeEncoder", [inner()]],
      ["writeUVarInt", [300]],
      ["writeVarLong", [-1]],
    ];
    const run = () =>
      calls.map(([m, args]) => {
        const e = new Encoder() as unknown as Record<string, (...a: unknown[]) => Enc>;
        const write = e[m];
        if (typeof write !== "function") return `${m}: no such method`;
        return `${m}: ${write.apply(e, args).buffer.toString("hex")}`;
      });
    const expected = await withOriginals(run);
    expect(run()).toEqual(expected);
    expect(expected.filter((r) => r.includes("no such method"))).toEqual([]);
  });

  it.each(["writeUVarInt", "writeVarInt"] as const)(
    "%s writes kafkajs's bytes for every value",
    async (m) => {
      const write = (v: unknown) => new Encoder()[m](v).buffer.toString("hex");
      const expected = await withOriginals(() => ints.map(write));
      expect(ints.map(write)).toEqual(expected);
    },
  );

  it("writeVarLong and sizeOfVarLong agree with kafkajs's for numbers and Longs", async () => {
    const write = (v: unknown) => new Encoder().writeVarLong(v).buffer.toString("hex");
    const expected = await withOriginals(() => longs.map((v) => [write(v), Encoder.sizeOfVarLong(v)]));
    expect(longs.map((v) => [write(v), Encoder.sizeOfVarLong(v)])).toEqual(expected);
    // the size is the bytes written
    for (const v of longs) expect(new Encoder().writeVarLong(v).buffer.length).toBe(Encoder.sizeOfVarLong(v));
  });

  it("keeps every byte when the buffer grows many times", async () => {
    const fill = () => {
      const e = new Encoder();
      for (let i = 0; i < 3000; i++) e.writeVarInt(i * 7919 - 50_000).writeVarIntString(`k${i}`);
      e.writeVarIntBytes(Buffer.alloc(70_000, 7)).writeInt64(Long.fromString("-123456789012345"));
      return e.buffer.toString("base64");
    };
    expect(fill()).toBe(await withOriginals(fill));
  });

  it("encodes a produce request of chat events byte for byte as kafkajs does", async () => {
    vi.spyOn(Date, "now").mockReturnValue(1_764_201_600_000);
    const messages = Array.from({ length: 300 }, (_, i) => {
      const id = `00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;
      const r = toKafkaRecord("chat-messages", {
        specversion: "1.0",
        id,
        source: "/chat-backend",
        type: "chat.message.created",
        subject: id,
        time: "2026-11-27T03:00:00.000Z",
        datacontenttype: "application/json",
        dataschema: "https://chat-backend.example/schemas/events/v1/chat.message.created.json",
        dataversion: "1",
        data: {
          session_id: id,
          message_id: id,
          seq: i + 1,
          role: "user",
          version: 1,
          content: "é".repeat(i),
        },
      });
      return { key: r.key, value: r.value, headers: r.headers };
    });
    const encode = async () => {
      const partitions = [0, 1, 2].map((p) => ({
        partition: p,
        messages: messages.filter((_, i) => i % 3 === p),
      }));
      const req = Produce({ acks: -1, timeout: 1000, topicData: [{ topic: "chat-messages", partitions }] });
      return (await req.encode()).buffer.toString("base64");
    };
    const expected = await withOriginals(encode);
    expect(await encode()).toBe(expected);
  });
});
