import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { functions } from "../../functions/manifest.ts";
import { resetChatRuntime } from "../../layers/chat/chat-runtime.ts";
import { resetConfig } from "../../layers/chat/config.ts";
import { closePool } from "../../layers/chat/db/pool.ts";
import { disconnectProducer } from "../../layers/chat/events/kafka-producer.ts";
import { type KafkaBridge, startKafkaBridge } from "../../local/kafka-bridge.ts";
import { type Runner, startRunner } from "../../local/server.ts";
import { type MockKafka, startMockKafka } from "../helpers/kafka-mock-cluster.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

// A runner whose KAFKA_TOPIC is not the manifest's chat-messages (docs/configuration.md lists it as a setting, and
// a stack takes its own through context kafkaTopic): events-consumer must read the topic the relay publishes to.
const TOPIC = "local.chat-messages";
let kafka: MockKafka;
let db: TestDatabase;
let runner: Runner;
let bridge: KafkaBridge;
const saved = process.env.KAFKA_TOPIC;

beforeAll(async () => {
  kafka = startMockKafka({ brokers: 1, topics: [{ name: TOPIC, partitions: 1 }] });
  db = await createTestDatabase();
  Object.assign(process.env, {
    DATABASE_URL: db.url,
    KAFKA_BROKERS: kafka.bootstrap,
    KAFKA_TOPIC: TOPIC,
    POWERTOOLS_LOG_LEVEL: "SILENT",
  });
  delete process.env.REDIS_URL;
  resetConfig();
  resetChatRuntime();
  runner = await startRunner({ port: 0, schedules: false, log: () => {} });
  bridge = await startKafkaBridge({
    brokers: [kafka.bootstrap],
    functions,
    invoke: runner.invoke,
    log: () => {},
    stopTimeoutMs: 1000,
  });
});

afterAll(async () => {
  await bridge?.stop();
  await runner?.close();
  await disconnectProducer();
  await closePool();
  await db?.drop();
  kafka?.stop();
  if (saved === undefined) delete process.env.KAFKA_TOPIC;
  else process.env.KAFKA_TOPIC = saved;
  resetConfig();
});

describe("local Kafka bridge with another KAFKA_TOPIC", () => {
  it("feeds events-consumer from the topic the API publishes to", async () => {
    const created = (await fetch(`${runner.url}/sessions/create`, { method: "POST" }).then((r) =>
      r.json(),
    )) as { session: { session_id: string } };
    const sid = created.session.session_id;
    let row: Record<string, unknown> | undefined;
    for (let i = 0; i < 100 && !row; i++) {
      const res = await db.pool.query("SELECT * FROM session_activity WHERE session_id = $1", [sid]);
      row = res.rows[0];
      if (!row) await new Promise((r) => setTimeout(r, 100));
    }
    expect(row).toMatchObject({ sessions_created: 1 });
  });
});
