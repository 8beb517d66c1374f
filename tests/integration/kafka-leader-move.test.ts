import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { murmur2 } from "../../layers/chat/events/kafka-partitioner.ts";
import {
  disconnectProducer,
  type OutgoingRecord,
  type ProducerSettings,
  publishRecords,
} from "../../layers/chat/events/kafka-producer.ts";
import { type MockKafka, readTopic, startMockKafka } from "../helpers/kafka-mock-cluster.ts";

/**
 * kafkajs 2.2.4 keeps one "response per broker" map across the retries of a send: when a partition's leadership
 * moves to a broker that already answered for its other partitions (a broker restart, a preferred-leader
 * election, MSK patching), the retry sends that partition's records nowhere and the send still resolves. The
 * relay would then mark records published that Kafka never got. A publish must fail instead (its records are
 * sent again: duplicates, never a loss).
 */
const TOPIC = "chat-leader-move";
let mock: MockKafka;
let config: ProducerSettings;

/** A key that the producer's partitioner puts on `partition` of a 2-partition topic. */
function keyFor(partition: number, salt: string): string {
  for (let i = 0; ; i++) {
    const key = `${salt}-${i}`;
    if ((murmur2(Buffer.from(key)) & 0x7fffffff) % 2 === partition) return key;
  }
}
const rec = (key: string, value: string): OutgoingRecord => ({ topic: TOPIC, key, value, headers: {} });

beforeAll(() => {
  mock = startMockKafka({ brokers: 3, topics: [{ name: TOPIC, partitions: 2 }] });
  mock.setPartitionLeader(TOPIC, 0, 1);
  mock.setPartitionLeader(TOPIC, 1, 2);
  config = { brokers: mock.brokers, clientId: "leader-move-test", ssl: false, auth: "none", log: () => {} };
});
afterAll(async () => {
  await disconnectProducer();
  mock?.stop();
});

describe("a partition's leader moves to a broker that already answered the same send", () => {
  it("the publish fails rather than report records Kafka never got; sent again, every record is on the topic", async () => {
    const k0 = keyFor(0, "p0");
    const k1 = keyFor(1, "p1");
    // the producer's metadata now says: partition 0 on broker 1, partition 1 on broker 2
    await publishRecords([rec(k0, "warm-0"), rec(k1, "warm-1")], { timeoutMs: 10_000, config });

    mock.setPartitionLeader(TOPIC, 1, 1);
    let failed: unknown;
    try {
      await publishRecords([rec(k0, "a"), rec(k1, "b")], { timeoutMs: 10_000, config });
    } catch (err) {
      failed = err;
    }
    if (failed) await publishRecords([rec(k0, "a"), rec(k1, "b")], { timeoutMs: 10_000, config });

    const seen = await readTopic(mock.bootstrap, TOPIC, {
      until: (records) => ["a", "b"].every((v) => records.some((r) => r.value === v)),
      timeoutMs: 8_000,
    });
    const values = seen.map((r) => r.value);
    expect(values).toContain("b"); // without the check: the send resolved and "b" was never written
    expect(values).toContain("a");
  });
});
