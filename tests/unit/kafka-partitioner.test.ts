import { randomUUID } from "node:crypto";
import { Partitioners, type PartitionMetadata } from "kafkajs";
import { describe, expect, it } from "vitest";
import { KeyHashPartitioner } from "../../layers/chat/events/kafka-partitioner.ts";

const metadata = (n: number, down: number[] = []): PartitionMetadata[] =>
  Array.from({ length: n }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: down.includes(partitionId) ? -1 : 0,
    replicas: [0],
    isr: [0],
  }));

// Keys of every length 0–40 (each tail case of the hash), ASCII and multi-byte, strings and Buffers.
const keys: (string | Buffer)[] = [
  ...Array.from({ length: 3000 }, () => randomUUID()),
  ...Array.from({ length: 41 }, (_, n) => "x".repeat(n)),
  ...Array.from({ length: 500 }, (_, i) => `user-${i}-${"é😀".repeat(i % 5)}`),
  ...Array.from({ length: 300 }, (_, i) =>
    Buffer.from(Array.from({ length: i % 37 }, (_, j) => (i * 31 + j * 7) % 256)),
  ),
];

describe("key hash partitioner", () => {
  it.each([1, 3, 6, 7, 50])(
    "puts every key on kafkajs's DefaultPartitioner's partition (%i partitions)",
    (n) => {
      const ours = KeyHashPartitioner();
      const theirs = Partitioners.DefaultPartitioner();
      const partitionMetadata = metadata(n);
      const pick = (p: typeof ours, key: string | Buffer) =>
        p({ topic: "chat-messages", partitionMetadata, message: { key, value: "v" } });
      const mismatched = keys.filter((key) => pick(ours, key) !== pick(theirs, key));
      expect(mismatched).toEqual([]);
      // and spreads them: every partition gets some of the 3,000 uuids
      expect(new Set(keys.slice(0, 3000).map((k) => pick(ours, k))).size).toBe(n);
    },
  );

  it("keeps an explicit partition, and sends keyless records round robin to partitions with a leader", () => {
    const p = KeyHashPartitioner();
    const partitionMetadata = metadata(6, [1, 4]);
    expect(p({ topic: "t", partitionMetadata, message: { key: "k", value: "v", partition: 4 } })).toBe(4);
    const keyless = Array.from({ length: 40 }, () =>
      p({ topic: "t", partitionMetadata, message: { value: "v" } }),
    );
    expect(new Set(keyless)).toEqual(new Set([0, 2, 3, 5]));
  });
});
