import { functions } from "../../functions/manifest.ts";
import { resetChatRuntime } from "../../layers/chat/chat-runtime.ts";
import { resetConfig } from "../../layers/chat/config.ts";
import { closePool } from "../../layers/chat/db/pool.ts";
import { disconnectProducer } from "../../layers/chat/events/kafka-producer.ts";
import { type KafkaBridge, startKafkaBridge } from "../../local/kafka-bridge.ts";
import { type Runner, startRunner } from "../../local/server.ts";
import { type MockKafka, startMockKafka } from "./kafka-mock-cluster.ts";
import { createTestDatabase, type TestDatabase } from "./test-database.ts";

export interface LocalKafkaBridge {
  kafka: MockKafka;
  db: TestDatabase;
  runner: Runner;
  bridge: KafkaBridge;
  /** Stops everything and puts back the environment it changed. */
  close(): Promise<void>;
}

/**
 * The runner with its MSK stand-in, as `npm start` runs them with KAFKA_BROKERS: a mock cluster holding `topic`, a
 * database of its own, no Redis, and `env` on top (e.g. KAFKA_TOPIC).
 */
export async function startLocalKafkaBridge(
  topic: { name: string; partitions: number },
  env: Record<string, string> = {},
  stopTimeoutMs?: number,
): Promise<LocalKafkaBridge> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  const kafka = startMockKafka({ brokers: 1, topics: [topic] });
  const db = await createTestDatabase();
  Object.assign(process.env, {
    DATABASE_URL: db.url,
    KAFKA_BROKERS: kafka.bootstrap,
    POWERTOOLS_LOG_LEVEL: "SILENT",
    ...env,
  });
  delete process.env.REDIS_URL;
  resetConfig();
  resetChatRuntime();
  const runner = await startRunner({ port: 0, schedules: false, log: () => {} });
  const bridge = await startKafkaBridge({
    brokers: [kafka.bootstrap],
    functions,
    invoke: runner.invoke,
    log: () => {},
    ...(stopTimeoutMs === undefined ? {} : { stopTimeoutMs }),
  });
  return {
    kafka,
    db,
    runner,
    bridge,
    async close() {
      await bridge.stop();
      await runner.close();
      await disconnectProducer();
      await closePool();
      await db.drop();
      kafka.stop();
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      resetConfig();
    },
  };
}
