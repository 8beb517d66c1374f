import type { Consumer } from "kafkajs";
import { config } from "#chat/config.ts";
import { withTimeout } from "#chat/timeout.ts";
import { consumedTopic, DEFAULT_KAFKA_BATCH_SIZE, type FunctionSpec } from "../functions/manifest.ts";
import type { RunnerLog } from "./log.ts";
import { toMskEvent } from "./msk-event.ts";

export interface KafkaBridgeOptions {
  brokers: string[];
  /** The functions to feed: each one with a `kafkaTopic` gets its own consumer group. */
  functions: readonly FunctionSpec[];
  /** The runner's invoke; a rejection leaves the batch uncommitted, so kafkajs retries it. */
  invoke: (name: string, payload: unknown) => Promise<unknown>;
  clientId?: string;
  ssl?: boolean;
  /**
   * The topic a function whose manifest `kafkaTopic` is CHAT_TOPIC reads: the one the runner's relay publishes to
   * (KAFKA_TOPIC, unless set), as the stack maps it to context kafkaTopic.
   */
  chatTopic?: string;
  log: RunnerLog;
  /**
   * How long stop() waits for the consumers to leave their groups. With the brokers gone, kafkajs's disconnect
   * waits out its own retries (≈ 25 s); the runner's shutdown must not.
   */
  stopTimeoutMs?: number;
  /**
   * How often the group hears from a consumer whose invocation is still running. kafkajs heartbeats only between
   * batches, so an invocation longer than the group's session timeout (30 s) would cost the consumer its
   * membership and its batch's commit, and the batch would run again: Lambda's pollers commit whatever ran
   * within the function's timeout (up to 15 min).
   */
  heartbeatEveryMs?: number;
  /** The consumer group's session timeout (kafkajs's default, 30 s, unless set). */
  sessionTimeoutMs?: number;
}

export interface KafkaBridge {
  stop(): Promise<void>;
}

/**
 * Keeps the consumer's group membership alive through a whole fetch, invocations and the gaps between them
 * (kafkajs heartbeats only between fetches, and its heartbeat() sends one only when its own interval is due, so
 * calling it often is cheap). `lost` turns true once a heartbeat fails (a rebalance under way): the partition may
 * be someone else's now, so the fetch's other records are left to the next fetch.
 */
function heartbeating(heartbeat: () => Promise<void>, everyMs: number) {
  const state = { lost: false, stop: () => clearInterval(timer) };
  const timer = setInterval(() => {
    heartbeat().catch(() => {
      state.lost = true;
    });
  }, everyMs);
  return state;
}

/**
 * HOOK POINT (local only) — stands in for the MSK event source mapping: consumes each function's topic and
 * invokes the function with Lambda's MSK event, at most the manifest's `kafkaBatchSize` records of one partition
 * at a time, and commits each invocation's records once it returns (a rejection leaves them uncommitted, and
 * they come again, as Lambda retries a failed batch).
 * kafkajs is imported lazily so a runner without KAFKA_BROKERS never loads it.
 */
export async function startKafkaBridge(options: KafkaBridgeOptions): Promise<KafkaBridge> {
  const { Kafka } = await import("kafkajs");
  const { buildKafkaConfig } = await import("../layers/chat/events/kafka-client.ts");
  const kafka = new Kafka(
    buildKafkaConfig({
      brokers: options.brokers,
      clientId: options.clientId ?? "chat-local-runner",
      ssl: options.ssl ?? false,
      auth: "none",
    }),
  );
  const heartbeatEveryMs = options.heartbeatEveryMs ?? 1000;
  const consumers: Consumer[] = [];
  const chatTopic = options.chatTopic ?? config().KAFKA_TOPIC;
  for (const fn of options.functions) {
    // With another KAFKA_TOPIC, the manifest's chat-messages would be a topic nothing publishes to.
    const topic = consumedTopic(fn, chatTopic);
    if (!topic) continue;
    const batchSize = fn.kafkaBatchSize ?? DEFAULT_KAFKA_BATCH_SIZE;
    const consumer = kafka.consumer({
      groupId: `local-${fn.name}`,
      ...(options.sessionTimeoutMs ? { sessionTimeout: options.sessionTimeoutMs } : {}),
    });
    consumers.push(consumer);
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachBatchAutoResolve: false,
      eachBatch: async ({
        batch,
        resolveOffset,
        heartbeat,
        commitOffsetsIfNecessary,
        isRunning,
        isStale,
      }) => {
        const beat = heartbeating(heartbeat, heartbeatEveryMs);
        try {
          for (let start = 0; start < batch.messages.length; start += batchSize) {
            // After a rebalance or stop() the rest of the fetch belongs to whoever owns the partition now.
            if (beat.lost || !isRunning() || isStale()) return;
            const records = batch.messages.slice(start, start + batchSize);
            const event = toMskEvent({ ...batch, messages: records, bootstrapServers: options.brokers });
            try {
              await options.invoke(fn.name, event);
            } catch (err) {
              options.log(
                "error",
                `${fn.name} failed on ${topic}-${batch.partition}; the batch will be retried`,
                {
                  error: String(err),
                },
              );
              throw err;
            }
            const last = records[records.length - 1];
            if (!last) continue;
            resolveOffset(last.offset);
            // Committed per invocation, as the pollers do: a later chunk's failure must not replay this one.
            await commitOffsetsIfNecessary({
              topics: [
                {
                  topic,
                  partitions: [{ partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }],
                },
              ],
            });
          }
        } finally {
          beat.stop();
        }
      },
    });
    options.log("info", `kafka: ${topic} → ${fn.name} (group local-${fn.name}, batches of ≤ ${batchSize})`);
  }
  return {
    async stop() {
      const limitMs = options.stopTimeoutMs ?? 5000;
      const leaving = Promise.allSettled(consumers.map((c) => c.disconnect()));
      const left = await withTimeout(leaving, limitMs, () => new Error("stop timed out")).then(
        () => true,
        () => false,
      );
      if (!left)
        options.log(
          "warn",
          `kafka: consumers did not leave their groups within ${limitMs} ms; stopping anyway`,
        );
    },
  };
}
