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

// The runner's MSK stand-in: what the API publishes reaches events-consumer as an MSK event, offline.
let kafka: MockKafka;
let db: TestDatabase;
let runner: Runner;
let bridge: KafkaBridge;

beforeAll(async () => {
  kafka = startMockKafka({ brokers: 1, topics: [{ name: "chat-messages", partitions: 2 }] });
  db = await createTestDatabase();
  Object.assign(process.env, {
    DATABASE_URL: db.url,
    KAFKA_BROKERS: kafka.bootstrap,
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
  });
});

afterAll(async () => {
  await bridge?.stop();
  await runner?.close();
  await disconnectProducer();
  await closePool();
  await db?.drop();
  kafka?.stop();
});

describe("local Kafka bridge", () => {
  it("feeds what the API publishes to events-consumer, which projects it once per event", async () => {
    const created = (await fetch(`${runner.url}/sessions/create`, { method: "POST" }).then((r) =>
      r.json(),
    )) as {
      session: { session_id: string };
      token: string;
    };
    const sid = created.session.session_id as string;
    const posted = await fetch(`${runner.url}/messages/post`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${created.token}` },
      body: JSON.stringify({ session_id: sid, content: "through the bridge" }),
    });
    expect(posted.status).toBe(201);
    let row: Record<string, unknown> | undefined;
    for (let i = 0; i < 150 && !row; i++) {
      const res = await db.pool.query(
        "SELECT * FROM session_activity WHERE session_id = $1 AND messages_created = 3",
        [sid],
      );
      row = res.rows[0];
      if (!row) await new Promise((r) => setTimeout(r, 100));
    }
    expect(row).toMatchObject({ sessions_created: 1, messages_created: 3, messages_edited: 0 });
  });
});
