import { randomUUID } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import { startMockKafka } from "../../tests/helpers/kafka-mock-cluster.ts";
import type { BenchContext } from "../lib/context.ts";
import { WORKERS } from "../lib/context.ts";
import { analyze } from "../lib/db.ts";
import { httpLoad } from "../lib/http-load.ts";
import type { CounterReport } from "../lib/instrument.ts";
import { epochNow } from "../lib/instrument.ts";
import { type CpuPerOp, CpuTally, cpuSnapshot } from "../lib/process-cpu.ts";
import { type BenchSession, contentFor, SessionRotation } from "../lib/sessions.ts";
import { type LatencySummary, round, summarize } from "../lib/stats.ts";
import { startWorker, type Worker } from "../lib/worker-rpc.ts";

/**
 * Kafka, against librdkafka's mock cluster (3 brokers, 6 partitions like infra's default):
 * - relay throughput: a pre-filled outbox published by relayOutbox (as the outbox-relay function runs it),
 *   events/s at each batch size, checked against the topic's offsets;
 * - commit-to-topic latency: POST /messages/post through the runner with Kafka on; the time from the change
 *   statement's commit (stamped in the runner's process) to a kafkajs consumer seeing the record.
 */
export interface KafkaParams {
  relayEvents: number;
  batchSizes: number[];
  /** The producer's KAFKA_COMPRESSION settings the relay is measured with (the first is the product default). */
  compressions: ("none" | "gzip")[];
  latencyLevels: { concurrency: number; posts: number }[];
  consumerMaxWaitMs: number;
}

export const kafkaParams = (smoke: boolean): KafkaParams =>
  smoke
    ? {
        relayEvents: 1000,
        batchSizes: [500, 2000],
        compressions: ["none", "gzip"],
        latencyLevels: [{ concurrency: 1, posts: 10 }],
        consumerMaxWaitMs: 10,
      }
    : {
        relayEvents: 30_000,
        batchSizes: [500, 2000],
        compressions: ["none", "gzip"],
        latencyLevels: [
          { concurrency: 1, posts: 400 },
          { concurrency: 16, posts: 1600 },
        ],
        consumerMaxWaitMs: 10,
      };

export interface RelayRun {
  batchSize: number;
  /** Older result files have none: "none". */
  compression?: "none" | "gzip";
  events: number;
  published: number;
  batches: number;
  elapsedMs: number;
  eventsPerSec: number;
  /** Time inside publishEvents (Kafka) vs the rest (the outbox read and the queue delete in Postgres). */
  publishMs: number;
  postgresMs: number;
  /** Offsets the topic advanced by: records actually on the topic. */
  onTopic: number;
  error?: string;
  counters: CounterReport;
  /** ms of CPU per event by process role (/proc); the load generator is the bench process, with the mock brokers. */
  cpu?: CpuPerOp;
}

export interface LatencyRun {
  concurrency: number;
  posts: number;
  /** Events whose commit was stamped and which the consumer saw. */
  matched: number;
  missing: number;
  commitToTopic: LatencySummary;
  /** Commit to the producer's ack on the after-commit fast path (in the runner's process). */
  commitToAck: LatencySummary;
  /** Ack to the consumer seeing the record: the consumer's own delay (fetch wait), not the product's. */
  ackToConsumer: LatencySummary;
  post: LatencySummary & { opsPerSec: number; non2xx: number };
}

/**
 * The same events published in batches of the relay's mean size (its events ÷ its batches), as many as it published,
 * without Postgres (no fetch, no mark): the relay's ceiling.
 */
export interface ProducerRun {
  batchSize: number;
  compression: "none" | "gzip";
  events: number;
  elapsedMs: number;
  eventsPerSec: number;
  onTopic: number;
  cpu?: CpuPerOp;
}

export interface KafkaResults {
  params: KafkaParams;
  relay: RelayRun[];
  /** Older result files have none. */
  producer?: ProducerRun[];
  latency: LatencyRun[];
}

const RELAY_TOPIC = "chat-messages-relay";
const TOPIC = "chat-messages";

async function fill(pool: { query: (s: string, v?: unknown[]) => Promise<unknown> }, n: number) {
  await pool.query("TRUNCATE outbox, outbox_pending");
  await pool.query(
    `INSERT INTO outbox (event_id, session_id, event_type, event)
     SELECT e.id, e.sid, 'chat.message.created', jsonb_build_object(
       'specversion', '1.0', 'id', e.id, 'source', '/chat-backend', 'type', 'chat.message.created',
       'subject', e.sid, 'time', to_char(now() AT TIME ZONE 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
       'datacontenttype', 'application/json',
       'dataschema', 'https://chat-backend.example/schemas/events/v1/chat.message.created.json',
       'dataversion', '1',
       'data', jsonb_build_object('session_id', e.sid, 'message_id', gen_random_uuid(), 'seq', e.g,
         'role', 'user', 'version', 1, 'content', $2::text, 'reply_to', null))
     FROM (SELECT gen_random_uuid() AS id, g,
                  ('00000000-0000-4000-8000-' || lpad(to_hex(g % 500), 12, '0'))::uuid AS sid
             FROM generate_series(1, $1) AS g) AS e`,
    [n, contentFor(1)],
  );
  await pool.query("VACUUM ANALYZE outbox, outbox_pending");
}

async function topicTotal(admin: ReturnType<Kafka["admin"]>, topic: string): Promise<number> {
  const offsets = await admin.fetchTopicOffsets(topic);
  return offsets.reduce((sum, o) => sum + Number(o.high), 0);
}

export async function kafkaBench(ctx: BenchContext): Promise<KafkaResults> {
  const p = kafkaParams(ctx.smoke);
  const mock = startMockKafka({
    brokers: 3,
    topics: [
      { name: TOPIC, partitions: 6 },
      { name: RELAY_TOPIC, partitions: 6 },
    ],
  });
  const kafka = new Kafka({ clientId: "bench", brokers: mock.brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  const consumer = kafka.consumer({
    groupId: `bench-${randomUUID()}`,
    maxWaitTimeInMs: p.consumerMaxWaitMs,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
  });
  const seen = new Map<string, number>();
  let duplicates = 0;
  const workers: Worker[] = [];
  const relayDb = await ctx.dbs.create("kafka_relay");
  const latencyDb = await ctx.dbs.create("kafka_latency");
  try {
    await admin.connect();
    // The mock cluster's group coordinator waits 3 s before the first assignment: join while the relay runs.
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
    await consumer.connect();
    await consumer.subscribe({ topic: TOPIC, fromBeginning: false });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const at = epochNow();
        const id = message.headers?.ce_id?.toString();
        if (!id) return;
        if (seen.has(id)) duplicates++;
        else seen.set(id, at);
      },
    });

    const results: KafkaResults = { params: p, relay: [], producer: [], latency: [] };
    // One relay worker per compression setting: the producer reads KAFKA_COMPRESSION once per process.
    for (const compression of p.compressions) {
      const relay = await startWorker(`relay-${compression}`, WORKERS.api, {
        env: ctx.env({
          DATABASE_URL: relayDb.url,
          KAFKA_BROKERS: mock.bootstrap,
          KAFKA_TOPIC: RELAY_TOPIC,
          KAFKA_COMPRESSION: compression,
        }),
        execArgv: ctx.workerExecArgv,
      });
      workers.push(relay);
      // An untimed run first, so the first timed one does not pay the pool's first connections, the relay
      // topic's first produce and the first (unoptimized) runs of the fetch, encode and publish code.
      await fill(relayDb.pool, Math.min(p.relayEvents, 3000));
      await relay.call("relay", { batchSize: p.batchSizes[0], timeBudgetMs: 120_000 }, 180_000);
      for (const batchSize of p.batchSizes) {
        await fill(relayDb.pool, p.relayEvents);
        const before = await topicTotal(admin, RELAY_TOPIC);
        ctx.log(`kafka: relay ${p.relayEvents} events, batch ${batchSize}, compression ${compression}`);
        const cpu = new CpuTally();
        const cpuBefore = cpuSnapshot(relay.pid);
        const r = await relay.call<{
          published: number;
          batches: number;
          elapsedMs: number;
          publishMs: number;
          error?: string;
          counters: CounterReport;
        }>("relay", { batchSize, timeBudgetMs: 120_000 }, 180_000);
        cpu.add(cpuBefore, cpuSnapshot(relay.pid), r.published);
        const onTopic = (await topicTotal(admin, RELAY_TOPIC)) - before;
        const run: RelayRun = {
          batchSize,
          compression,
          events: p.relayEvents,
          published: r.published,
          batches: r.batches,
          elapsedMs: round(r.elapsedMs, 1),
          eventsPerSec: round((r.published * 1000) / r.elapsedMs, 0),
          publishMs: round(r.publishMs, 1),
          postgresMs: round(r.elapsedMs - r.publishMs, 1),
          onTopic,
          counters: r.counters,
          cpu: cpu.perOp(),
          ...(r.error ? { error: r.error } : {}),
        };
        if (r.published !== p.relayEvents || onTopic < r.published)
          throw new Error(
            `relay published ${r.published}/${p.relayEvents}, topic advanced by ${onTopic}: ${r.error ?? ""}`,
          );
        results.relay.push(run);
        ctx.log(
          `  ${run.eventsPerSec} events/s (${run.batches} batches, Kafka ${run.publishMs} ms, Postgres ${run.postgresMs} ms)`,
        );

        // the relay's own batch shape: byte-cut batches (KAFKA_MAX_BATCH_BYTES) are smaller than batchSize
        const relayBatch = Math.ceil(p.relayEvents / r.batches);
        await relay.call("prepareEvents", { events: relayBatch }, 60_000);
        const producerBefore = await topicTotal(admin, RELAY_TOPIC);
        const producerCpu = new CpuTally();
        const producerCpuBefore = cpuSnapshot(relay.pid);
        const alone = await relay.call<{ published: number; elapsedMs: number }>(
          "publishOnly",
          { batches: r.batches },
          180_000,
        );
        producerCpu.add(producerCpuBefore, cpuSnapshot(relay.pid), alone.published);
        const producerRun: ProducerRun = {
          batchSize,
          compression,
          events: alone.published,
          elapsedMs: round(alone.elapsedMs, 1),
          eventsPerSec: round((alone.published * 1000) / alone.elapsedMs, 0),
          onTopic: (await topicTotal(admin, RELAY_TOPIC)) - producerBefore,
          cpu: producerCpu.perOp(),
        };
        if (producerRun.onTopic < alone.published)
          throw new Error(
            `producer alone: ${alone.published} published, topic advanced by ${producerRun.onTopic}`,
          );
        results.producer?.push(producerRun);
        ctx.log(`  producer alone (no Postgres): ${producerRun.eventsPerSec} events/s`);
      }
      await relay.close();
    }

    const api = await startWorker("api-kafka", WORKERS.api, {
      env: ctx.env({ DATABASE_URL: latencyDb.url, REDIS_URL: ctx.redisUrl, KAFKA_BROKERS: mock.bootstrap }),
      execArgv: ctx.workerExecArgv,
    });
    workers.push(api);
    const { url } = await api.call<{ url: string }>("start");
    await Promise.race([
      joined,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error("consumer did not join in 30 s")), 30_000),
      ),
    ]);
    for (const level of p.latencyLevels) {
      const sessions = await api.call<BenchSession[]>("createSessions", {
        n: Math.ceil(level.posts / 25) + level.concurrency,
        concurrency: 8,
      });
      await analyze(latencyDb.pool);
      const rotation = new SessionRotation(sessions, level.concurrency, 25);
      // Warm the producer and the path, then measure.
      await httpLoad(url, { concurrency: 1, durationMs: 10_000, maxOps: 5 }, (w, seq) =>
        post(rotation.next(w), seq),
      );
      await api.call("recordCommits", true);
      ctx.log(`kafka: ${level.posts} posts at c=${level.concurrency}, commit-to-topic`);
      const load = await httpLoad(
        url,
        { concurrency: level.concurrency, durationMs: 120_000, maxOps: level.posts },
        (w, seq) => post(rotation.next(w), seq),
      );
      await api.call("recordCommits", false);
      const { commits, acks } = await api.call<{
        commits: Record<string, number>;
        acks: Record<string, number>;
      }>("drainCommits");
      const ids = Object.keys(commits);
      // No stamped commit means the instrumentation no longer recognizes the change statement: fail loudly.
      if (load.n > 0 && ids.length === 0)
        throw new Error(
          "commit-to-topic: no change statement was stamped (bench/lib/instrument.ts out of date)",
        );
      const deadline = Date.now() + 15_000;
      while (ids.some((id) => !seen.has(id)) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      const matched = ids.filter((id) => seen.has(id));
      const lat = matched.map((id) => (seen.get(id) as number) - (commits[id] as number));
      const acked = ids.filter((id) => acks[id] !== undefined);
      const toAck = acked.map((id) => (acks[id] as number) - (commits[id] as number));
      const ackToSeen = matched
        .filter((id) => acks[id] !== undefined)
        .map((id) => (seen.get(id) as number) - (acks[id] as number));
      const run: LatencyRun = {
        concurrency: level.concurrency,
        posts: load.n,
        matched: lat.length,
        missing: ids.length - lat.length,
        commitToTopic: summarize(lat),
        commitToAck: summarize(toAck),
        ackToConsumer: summarize(ackToSeen),
        post: { ...summarize([]), ...pick(load), opsPerSec: load.opsPerSec, non2xx: load.non2xx },
      };
      results.latency.push(run);
      ctx.log(
        `  commit-to-topic p50 ${run.commitToTopic.p50} ms, p99 ${run.commitToTopic.p99} ms (commit→ack p50 ${run.commitToAck.p50}, ack→consumer p50 ${run.ackToConsumer.p50}; ${run.matched} events, ${run.missing} missing); POST p50 ${load.p50} ms`,
      );
    }
    if (duplicates > 0) ctx.log(`kafka: consumer saw ${duplicates} duplicate records (at-least-once)`);
    return results;
  } finally {
    for (const w of workers) await w.close();
    await consumer.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
    mock.stop();
    ctx.dbs.release(relayDb);
    ctx.dbs.release(latencyDb);
  }
}

function pick(s: LatencySummary): LatencySummary {
  return { n: s.n, p50: s.p50, p90: s.p90, p99: s.p99, max: s.max, mean: s.mean };
}

function post(s: BenchSession, seq: number) {
  return {
    method: "POST" as const,
    path: "/messages/post",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${s.token}`,
      "idempotency-key": randomUUID(),
    },
    body: JSON.stringify({ session_id: s.id, content: contentFor(seq) }),
  };
}
