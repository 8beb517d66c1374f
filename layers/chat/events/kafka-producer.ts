import {
  type Admin,
  CompressionTypes,
  Kafka,
  type Producer,
  type RecordMetadata,
  type TopicMessages,
} from "kafkajs";
import { withTimeout } from "../timeout.ts";
import { buildKafkaConfig, type KafkaClientOptions } from "./kafka-client.ts";
import { assignedPartition, KeyHashPartitioner } from "./kafka-partitioner.ts";
import { refusedForDeadline, sendBy, sendDeadline } from "./kafkajs-send-by.ts";
import { chunkRecords, type OutgoingRecord } from "./record-chunks.ts";

export type { OutgoingRecord } from "./record-chunks.ts";

/** Client options plus producer behaviour. */
export interface ProducerSettings extends KafkaClientOptions {
  compression?: "none" | "gzip";
  /** Off by default: librdkafka's mock cluster cannot do it; real MSK can. */
  idempotent?: boolean;
  /** Upper bound on a produce request's records, in bytes (default 1,000,000: under Kafka's 1 MiB default). */
  maxBatchBytes?: number;
}

export const DEFAULT_MAX_BATCH_BYTES = 1_000_000;

export interface PublishOptions {
  timeoutMs: number;
  /** Defaults to the settings last given to getProducer/publishRecords/pingKafka. */
  config?: ProducerSettings;
}

export interface KafkaPing {
  status: "ok" | "down";
  latency_ms: number;
  error?: string;
}

export class KafkaTimeoutError extends Error {
  override name = "KafkaTimeoutError";
}

/** A send that resolved without an acknowledgement for every partition its records went to. */
export class KafkaUnacknowledgedError extends Error {
  override name = "KafkaUnacknowledgedError";
}

interface Handle<T> {
  key: string;
  client: T;
  /** Settles once connect() has; shared by every caller. */
  ready: Promise<T>;
}

// One producer (and one admin for pings) per process, reused across invocations.
let settings: ProducerSettings | undefined;
let producer: Handle<Producer> | undefined;
let admin: Handle<Admin> | undefined;

// Functions (the log sink) drop out of the key; everything else changes the connection.
const keyOf = (s: ProducerSettings) => JSON.stringify(s);

function settingsFrom(config: ProducerSettings | undefined): ProducerSettings {
  if (config) settings = config;
  if (!settings) throw new Error("Kafka producer not configured: pass config first");
  return settings;
}

function connectHandle<T extends Producer | Admin>(key: string, client: T): Handle<T> {
  const handle = { key, client, ready: client.connect().then(() => client) };
  // A failed connect is never reused (the next call connects again) nor reported as unhandled.
  handle.ready.catch(() => discard(handle));
  return handle;
}

/** Drops a handle so the next call reconnects; disconnects it once its connect has settled. */
function discard<T extends Producer | Admin>(handle: Handle<T>): void {
  if (producer === handle) producer = undefined;
  if (admin === handle) admin = undefined;
  const close = () => handle.client.disconnect();
  handle.ready.then(close, close).catch(() => {});
}

/** The process's producer for these settings, connected (lazily, once) and reused. */
export function getProducer(config?: ProducerSettings): Promise<Producer> {
  const s = settingsFrom(config);
  const key = keyOf(s);
  if (producer && producer.key !== key) discard(producer);
  if (!producer) {
    const kafka = new Kafka(buildKafkaConfig(s));
    const client = kafka.producer({
      idempotent: s.idempotent ?? false,
      // One request in flight per broker keeps records with the same key in order across retries.
      maxInFlightRequests: 1,
      // Java-compatible murmur2 partitioning (kafkajs's DefaultPartitioner, computed without Long objects).
      createPartitioner: KeyHashPartitioner,
    });
    producer = connectHandle(key, client);
  }
  return producer.ready;
}

const timedOut = (what: string, ms: number) => () =>
  new KafkaTimeoutError(`${what} timed out after ${ms} ms`);

/** Each message stamped with `deadline`, past which no produce request carries it (sendBy). */
function byTopic(records: OutgoingRecord[], deadline: number): TopicMessages[] {
  const topics = new Map<string, TopicMessages>();
  const shared = sendDeadline(deadline);
  for (const r of records) {
    let entry = topics.get(r.topic);
    if (!entry) {
      entry = { topic: r.topic, messages: [] };
      topics.set(r.topic, entry);
    }
    entry.messages.push(sendBy({ key: r.key, value: r.value, headers: r.headers }, shared));
  }
  return [...topics.values()];
}

/**
 * Sends records with acks=all; resolves or rejects within timeoutMs. Records go out in order, in as many
 * produce requests as maxBatchBytes needs, one after the other (so a key's records stay in order). On a failure
 * the producer is dropped so the next call reconnects (on this call's timeout, only once its send fails too),
 * and the caller sends every record again:
 * those already acked become duplicates, as does a send still in flight at the timeout that lands later
 * (at-least-once: consumers dedupe by event id). A produce request not yet made at the timeout (the producer
 * still connecting, the topic's metadata loading, a retry) is never made (kafkajs-send-by.ts).
 */
export async function publishRecords(records: OutgoingRecord[], options: PublishOptions): Promise<void> {
  if (records.length === 0) return;
  const s = settingsFrom(options.config);
  const ready = getProducer(s);
  const handle = producer as Handle<Producer>;
  const compression = s.compression === "gzip" ? CompressionTypes.GZIP : CompressionTypes.None;
  const deadline = Date.now() + options.timeoutMs;
  const work = ready.then(async (p) => {
    for (const chunk of chunkRecords(records, s.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES)) {
      const topicMessages = byTopic(chunk, deadline);
      const acked = await p.sendBatch({ topicMessages, acks: -1, timeout: options.timeoutMs, compression });
      const missing = unacknowledged(topicMessages, acked);
      if (missing.length > 0)
        throw new KafkaUnacknowledgedError(
          `Kafka acknowledged the send without partition(s) ${missing.join(", ")}; its records are sent again`,
        );
    }
  });
  try {
    const what = `Kafka publish of ${records.length} record(s)`;
    await withTimeout(work, options.timeoutMs, timedOut(what, options.timeoutMs));
  } catch (err) {
    // Only this call's bound ran out: the producer may still be connecting (a cold TLS and SASL handshake can
    // outlast a request's 1 s bound), and dropping it then would leave every later call cold too. It stays for
    // the next call, and goes if the send it was making fails after all (not if its records were refused for
    // their deadline: that says nothing of the connection).
    if (err instanceof KafkaTimeoutError)
      work.catch((late) => {
        if (!refusedForDeadline(late)) discard(handle);
      });
    else if (!refusedForDeadline(err)) discard(handle);
    throw err;
  }
}

/**
 * The topic/partitions a send's records went to that its result does not acknowledge.
 * kafkajs 2.2.4 keeps each broker's response across a send's retries: when a partition's leadership moves to a
 * broker that already answered (a broker restart, a leader election), the retry sends that partition's records
 * nowhere and the send still resolves (tests/integration/kafka-leader-move.test.ts).
 */
function unacknowledged(topicMessages: TopicMessages[], acked: RecordMetadata[]): string[] {
  const missing: string[] = [];
  for (const { topic, messages } of topicMessages) {
    const got = new Set(
      acked.filter((m) => m.topicName === topic && m.errorCode === 0).map((m) => m.partition),
    );
    const sent = new Set(messages.map((m) => assignedPartition(m)));
    for (const p of sent) if (p === undefined || !got.has(p)) missing.push(`${topic}/${p ?? "?"}`);
  }
  return missing;
}

/** Health check: a bounded cluster metadata round trip through a reused admin client. */
export async function pingKafka(timeoutMs: number, config?: ProducerSettings): Promise<KafkaPing> {
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  let handle: Handle<Admin> | undefined;
  try {
    const s = settingsFrom(config);
    const key = keyOf(s);
    if (admin && admin.key !== key) discard(admin);
    if (!admin) admin = connectHandle(key, new Kafka(buildKafkaConfig(s)).admin());
    handle = admin;
    await withTimeout(
      handle.ready.then((a) => a.describeCluster()),
      timeoutMs,
      timedOut("Kafka ping", timeoutMs),
    );
    return { status: "ok", latency_ms: latency() };
  } catch (err) {
    if (handle) discard(handle);
    return { status: "down", latency_ms: latency(), error: (err as Error).message };
  }
}

/** Disconnects the producer and admin (tests, shutdown). The next use reconnects. */
export async function disconnectProducer(): Promise<void> {
  const handles = [producer, admin].filter((h) => h !== undefined);
  producer = undefined;
  admin = undefined;
  await Promise.all(handles.map((h) => h.ready.then((c) => c.disconnect()).catch(() => {})));
}
