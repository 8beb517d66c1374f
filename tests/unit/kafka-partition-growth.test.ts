import { createRequire } from "node:module";
import { KafkaJSProtocolError, type PartitionMetadata } from "kafkajs";
import { describe, expect, it } from "vitest";
import {
  assignedPartition,
  KeyHashPartitioner,
  murmur2,
} from "../../layers/chat/events/kafka-partitioner.ts";

/**
 * kafkajs partitions a send's messages again on every retry, after a metadata refresh, and keeps the answers of
 * brokers that already acknowledged their part. If the topic gained partitions meanwhile, a record that moved
 * onto a partition such a broker already acknowledged would be sent nowhere, and the send would still resolve
 * with an acknowledgement for that partition. These tests drive kafkajs's own send loop (sendMessages, its
 * retrier, the cluster's leader lookup) against two fake brokers.
 */
const require = createRequire(import.meta.url);
type Send = (request: { acks: number; timeout: number; topicMessages: TopicMessages[] }) => Promise<Ack[]>;
const sendMessages = require("kafkajs/src/producer/sendMessages.js") as (deps: object) => Send;
const createRetry = require("kafkajs/src/retry/index.js") as (options: object) => unknown;
const { createErrorFromCode } = require("kafkajs/src/protocol/error.js") as {
  createErrorFromCode: (code: number) => Error;
};
const Cluster = require("kafkajs/src/cluster/index.js") as {
  prototype: { findLeaderForPartitions: (topic: string, partitions: string[]) => object };
};

type Message = { key: string; value: string };
type TopicMessages = { topic: string; messages: Message[] };
type Ack = { topicName: string; partition: number; errorCode: number };
const TOPIC = "chat-messages";
const NOT_LEADER_FOR_PARTITION = 6;

/** Partition i led by broker i % 2. */
const metadata = (n: number): PartitionMetadata[] =>
  Array.from({ length: n }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: partitionId % 2,
    replicas: [partitionId % 2],
    isr: [partitionId % 2],
  }));

const partitionOf = (key: string, count: number) => (murmur2(Buffer.from(key)) & 0x7fffffff) % count;
function keyWhere(test: (key: string) => boolean): string {
  for (let i = 0; i < 100_000; i++) if (test(`session-${i}`)) return `session-${i}`;
  throw new Error("no key meets the condition");
}

/**
 * A topic of `before` partitions that has `after` once the producer refreshes its metadata; broker 1 refuses
 * the first produce request it gets as no longer the leader (which makes kafkajs refresh and retry).
 */
function growingTopic(before: number, after: number) {
  let count = before;
  let refusedOnce = false;
  const accepted: { broker: number; partition: number; value: string }[] = [];
  const broker = (nodeId: number) => ({
    nodeId,
    produce: async ({ topicData }: { topicData: { topic: string; partitions: PartitionData[] }[] }) => {
      if (nodeId === 1 && !refusedOnce) {
        refusedOnce = true;
        throw new KafkaJSProtocolError(createErrorFromCode(NOT_LEADER_FOR_PARTITION));
      }
      for (const { partitions } of topicData)
        for (const { partition, messages } of partitions)
          for (const m of messages) accepted.push({ broker: nodeId, partition, value: m.value });
      return {
        topics: topicData.map(({ topic, partitions }) => ({
          topicName: topic,
          partitions: partitions.map(({ partition }) => ({ partition, errorCode: 0, baseOffset: "0" })),
        })),
      };
    },
  });
  const brokers = [broker(0), broker(1)];
  const cluster = {
    addMultipleTargetTopics: async () => {},
    refreshMetadataIfNecessary: async () => {},
    refreshMetadata: async () => {
      count = after;
    },
    isConnected: () => true,
    findTopicPartitionMetadata: () => metadata(count),
    findLeaderForPartitions: Cluster.prototype.findLeaderForPartitions,
    findBroker: async ({ nodeId }: { nodeId: number }) => brokers[nodeId],
  };
  const eosManager = {
    isTransactional: () => false,
    getSequence: () => 0,
    updateSequence: () => {},
    acquireBrokerLock: async () => {},
    releaseBrokerLock: async () => {},
    getProducerId: () => -1,
    getProducerEpoch: () => 0,
  };
  const send = sendMessages({
    logger: { debug: () => {}, error: () => {}, info: () => {}, warn: () => {} },
    cluster,
    partitioner: KeyHashPartitioner(),
    eosManager,
    retrier: createRetry({ retries: 3, initialRetryTime: 1 }),
  });
  return { send, accepted };
}
type PartitionData = { partition: number; messages: Message[] };

describe("a send retried after its topic gained partitions", () => {
  // `moved` is on broker 1's partition 1 of 3, and on broker 0's partition 2 of 5, where `stays` already is:
  // re-partitioned on the retry, it would join a partition broker 0 acknowledged in the first attempt.
  const moved = keyWhere((k) => partitionOf(k, 3) === 1 && partitionOf(k, 5) === 2);
  const stays = keyWhere((k) => partitionOf(k, 3) === 2 && partitionOf(k, 5) === 2);

  it("sends every record to a broker that acknowledges its partition", async () => {
    const { send, accepted } = growingTopic(3, 5);
    const messages = [
      { key: stays, value: "stays" },
      { key: moved, value: "moved" },
    ];
    const acks = await send({ acks: -1, timeout: 1000, topicMessages: [{ topic: TOPIC, messages }] });

    expect(accepted.map((a) => a.value).sort()).toEqual(["moved", "stays"]);
    const acked = new Set(acks.filter((a) => a.errorCode === 0).map((a) => a.partition));
    for (const m of messages) {
      const partition = assignedPartition(m);
      expect(acked.has(partition as number)).toBe(true);
      expect(accepted).toContainEqual({ broker: (partition as number) % 2, partition, value: m.value });
    }
  });

  it("keeps each record on the partition it was first given", async () => {
    const { send, accepted } = growingTopic(3, 5);
    const messages = [{ key: moved, value: "moved" }];
    await send({ acks: -1, timeout: 1000, topicMessages: [{ topic: TOPIC, messages }] });
    expect(assignedPartition(messages[0] as Message)).toBe(1);
    expect(accepted).toEqual([{ broker: 1, partition: 1, value: "moved" }]);
  });
});

describe("key hash partitioner, a message partitioned twice", () => {
  const partition = (message: object, n: number) =>
    KeyHashPartitioner()({ topic: TOPIC, partitionMetadata: metadata(n), message: message as Message });

  it("keeps its first partition when the topic grew, and is partitioned again when it shrank", () => {
    const key = keyWhere((k) => partitionOf(k, 6) === 4 && partitionOf(k, 8) !== 4);
    const message = { key, value: "v" };
    expect(partition(message, 6)).toBe(4);
    expect(partition(message, 8)).toBe(4);
    // a smaller count is a recreated topic: partitions 0–3, so 4 no longer exists
    expect(partition(message, 4)).toBe(partitionOf(key, 4));
    // a new message object with the same key is partitioned afresh
    expect(partition({ key, value: "v" }, 8)).toBe(partitionOf(key, 8));
  });
});
