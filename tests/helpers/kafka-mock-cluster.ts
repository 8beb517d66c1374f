import { randomUUID } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import { loadLibrdkafka } from "./librdkafka-ffi.ts";

/** librdkafka's in-process Kafka-protocol mock cluster, driven through FFI. */
export interface MockKafka {
  bootstrap: string;
  brokers: string[];
  /** Broker ids start at 1. */
  setBrokerDown(id: number): void;
  setBrokerUp(id: number): void;
  setAllDown(): void;
  setAllUp(): void;
  /** The next requests of this API key (0 = Produce, 3 = Metadata, …) fail with these codes, in order. */
  pushRequestErrors(apiKey: number, errorCodes: number[]): void;
  setRtt(brokerId: number, ms: number): void;
  /** Moves a partition's leadership to another broker: clients with older metadata get NOT_LEADER_OR_FOLLOWER. */
  setPartitionLeader(topic: string, partition: number, brokerId: number): void;
  createTopic(name: string, partitions: number, replication?: number): void;
  stop(): void;
}

export interface MockKafkaOptions {
  brokers?: number;
  topics?: { name: string; partitions: number }[];
}

export function startMockKafka(options: MockKafkaOptions = {}): MockKafka {
  const count = options.brokers ?? 3;
  const lib = loadLibrdkafka();
  const conf = lib.confNew();
  // The host client has no bootstrap.servers on purpose; hide its notice about that.
  lib.confSet(conf, "log_level", "3");
  const rk = lib.newProducer(conf); // takes ownership of conf
  const mc = lib.mockClusterNew(rk, count);
  if (!mc) {
    lib.destroy(rk);
    throw new Error("rd_kafka_mock_cluster_new failed");
  }
  const check = (what: string, code: number) => {
    if (code !== 0) throw new Error(`${what}: ${lib.errName(code)}`);
  };
  const ids = Array.from({ length: count }, (_, i) => i + 1);
  const bootstrap = lib.mockBootstraps(mc);
  let stopped = false;

  const cluster: MockKafka = {
    bootstrap,
    brokers: bootstrap.split(","),
    setBrokerDown: (id) => check(`set broker ${id} down`, lib.mockBrokerSetDown(mc, id)),
    setBrokerUp: (id) => check(`set broker ${id} up`, lib.mockBrokerSetUp(mc, id)),
    setAllDown: () => {
      for (const id of ids) cluster.setBrokerDown(id);
    },
    setAllUp: () => {
      for (const id of ids) cluster.setBrokerUp(id);
    },
    pushRequestErrors: (apiKey, codes) => lib.mockPushRequestErrors(mc, apiKey, codes),
    setRtt: (id, ms) => check(`set broker ${id} rtt`, lib.mockBrokerSetRtt(mc, id, ms)),
    setPartitionLeader: (topic, partition, id) =>
      check(
        `move ${topic}/${partition} to broker ${id}`,
        lib.mockPartitionSetLeader(mc, topic, partition, id),
      ),
    createTopic: (name, partitions, replication = 1) =>
      check(`create topic ${name}`, lib.mockTopicCreate(mc, name, partitions, replication)),
    stop: () => {
      if (stopped) return;
      stopped = true;
      lib.mockClusterDestroy(mc);
      lib.destroy(rk);
    },
  };
  for (const t of options.topics ?? []) cluster.createTopic(t.name, t.partitions);
  return cluster;
}

export interface ReadRecord {
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
  partition: number;
  offset: string;
}

export interface ReadTopicOptions {
  /** Stop as soon as this many records have arrived. */
  count?: number;
  /** Stop as soon as this holds for what has arrived (e.g. every expected event id seen). */
  until?: (records: ReadRecord[]) => boolean;
  /** Stop after this long whatever arrived (default 10 s). */
  timeoutMs?: number;
}

/** Reads a topic from the beginning with a throwaway consumer group; always disconnects. */
export async function readTopic(
  bootstrap: string,
  topic: string,
  options: ReadTopicOptions = {},
): Promise<ReadRecord[]> {
  const kafka = new Kafka({
    clientId: "test-reader",
    brokers: bootstrap.split(","),
    logLevel: logLevel.ERROR,
  });
  const consumer = kafka.consumer({
    groupId: `test-reader-${randomUUID()}`,
    maxWaitTimeInMs: 100,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
  });
  const records: ReadRecord[] = [];
  let finish = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const timer = setTimeout(finish, options.timeoutMs ?? 10_000);
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) {
          if (v !== undefined) headers[k] = Array.isArray(v) ? v.map(String).join(",") : v.toString();
        }
        records.push({
          key: message.key?.toString() ?? null,
          value: message.value?.toString() ?? null,
          headers,
          partition,
          offset: message.offset,
        });
        if (options.count !== undefined && records.length >= options.count) finish();
        if (options.until?.(records)) finish();
      },
    });
    await done;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
  return records;
}
