import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalKafkaBridge, startLocalKafkaBridge } from "../helpers/local-kafka-bridge.ts";

// A runner whose KAFKA_TOPIC is not the manifest's chat-messages (docs/configuration.md lists it as a setting, and
// a stack takes its own through context kafkaTopic): events-consumer must read the topic the relay publishes to.
const TOPIC = "local.chat-messages";
let local: LocalKafkaBridge;

beforeAll(async () => {
  local = await startLocalKafkaBridge({ name: TOPIC, partitions: 1 }, { KAFKA_TOPIC: TOPIC }, 1000);
});

afterAll(async () => {
  await local?.close();
});

describe("local Kafka bridge with another KAFKA_TOPIC", () => {
  it("feeds events-consumer from the topic the API publishes to", async () => {
    const created = (await fetch(`${local.runner.url}/sessions/create`, { method: "POST" }).then((r) =>
      r.json(),
    )) as { session: { session_id: string } };
    const sid = created.session.session_id;
    let row: Record<string, unknown> | undefined;
    for (let i = 0; i < 100 && !row; i++) {
      const res = await local.db.pool.query("SELECT * FROM session_activity WHERE session_id = $1", [sid]);
      row = res.rows[0];
      if (!row) await new Promise((r) => setTimeout(r, 100));
    }
    expect(row).toMatchObject({ sessions_created: 1 });
  });
});
