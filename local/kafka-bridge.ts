import type { Consumer } from "kafkajs";
import { withTimeout } from "#chat/timeout.ts";
import type { FunctionSpec } from "../functions/manifest.ts";
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
  log: RunnerLog;
  /**
   * How long stop() waits for the consumers to leave their groups. With the brokers gone, kafkajs's disconnect
   * waits out its own retries (≈ 25 s); the runner's shutdown must not.
   */
  stopTimeoutMs?: number;
}

export interface KafkaBridge {
  stop(): Promise<void>;
}

/**
 * HOOK POINT (local only) — stands in for the MSK event source mapping: consumes each function's topic and
 * invokes the function with Lambda's MSK event, one partition batch at a time.
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
  const consumers: Consumer[] = [];
  for (const fn of options.functions) {
    const topic = fn.kafkaTopic;
    if (!topic) continue;
    const consumer = kafka.consumer({ groupId: `local-${fn.name}` });
    consumers.push(consumer);
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        if (batch.messages.length === 0) return;
        try {
          await options.invoke(fn.name, toMskEvent({ ...batch, bootstrapServers: options.brokers }));
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
      },
    });
    options.log("info", `kafka: ${topic} → ${fn.name} (group local-${fn.name})`);
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
