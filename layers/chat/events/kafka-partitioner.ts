import { type ICustomPartitioner, Partitioners } from "kafkajs";

/**
 * Kafka's murmur2 (the Java client's `Utils.murmur2`), on 32-bit integers as Java computes it. kafkajs's own
 * copy does the same arithmetic through `Long` objects, ≈ 10 × slower: 6–7 µs per 36-byte key here, paid for
 * every record the relay or a request publishes.
 */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  const end = length & ~3;
  let h = 0x9747b28c ^ length;
  for (let i = 0; i < end; i += 4) {
    let k = (data[i] as number) | ((data[i + 1] as number) << 8);
    k |= ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    h = Math.imul(h, m) ^ Math.imul(k, m);
  }
  const rest = length & 3;
  if (rest > 0) {
    if (rest === 3) h ^= (data[end + 2] as number) << 16;
    if (rest >= 2) h ^= (data[end + 1] as number) << 8;
    h = Math.imul(h ^ (data[end] as number), m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  return (h ^ (h >>> 15)) | 0;
}

/**
 * The Java client's default partitioning, as kafkajs's DefaultPartitioner (which we used before): an explicit
 * partition wins, a key picks `murmur2(key) & 0x7fffffff` modulo the topic's partitions, so every key lands
 * where Java producers (and our earlier records) put it. Keyless records go to kafkajs's own round robin.
 *
 * A message keeps the partition it was first given, as in the Java client, which partitions a record once:
 * kafkajs partitions a send's messages again on every retry, and if the topic gained partitions meanwhile a
 * record could move onto a partition whose broker had already acknowledged the send's records for it. kafkajs
 * would then send it nowhere, and the producer's check (every partition a record went to acknowledged) would
 * pass. Pinned, a partition's records are the same in every attempt, so its acknowledgement covers each of them.
 */
export const KeyHashPartitioner: ICustomPartitioner = () => {
  const keyless = Partitioners.DefaultPartitioner();
  return (args) => {
    const message = args.message as { [ASSIGNED]?: number };
    const pinned = message[ASSIGNED];
    // Partitions are never removed from a topic; a smaller count is a recreated topic: partition again.
    if (pinned !== undefined && pinned < args.partitionMetadata.length) return pinned;
    const partition = choose(args);
    message[ASSIGNED] = partition;
    return partition;
  };

  function choose(args: Parameters<ReturnType<ICustomPartitioner>>[0]): number {
    const { message, partitionMetadata } = args;
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    if (message.key === null || message.key === undefined) return keyless(args);
    const key = typeof message.key === "string" ? Buffer.from(message.key) : message.key;
    return (murmur2(key) & 0x7fffffff) % partitionMetadata.length;
  }
};

// On the message object itself (a symbol: invisible to kafkajs, which reads key, value, headers and timestamp).
// A WeakMap entry per message measured 34.3 against 29.7 µs per event (bench/tools/kafka-publish-cost.ts, four
// alternating runs, noisy); the symbol 33.9 against 33.8.
const ASSIGNED = Symbol("partition");

/**
 * The partition KeyHashPartitioner gave a message object: where every attempt of its send put it, which the
 * producer checks against the partitions Kafka acknowledged.
 */
export const assignedPartition = (message: object): number | undefined =>
  (message as { [ASSIGNED]?: number })[ASSIGNED];
