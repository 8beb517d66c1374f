import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalKafkaBridge, startLocalKafkaBridge } from "../helpers/local-kafka-bridge.ts";

// The runner's MSK stand-in: what the API publishes reaches events-consumer as an MSK event, offline.
let local: LocalKafkaBridge;

beforeAll(async () => {
  local = await startLocalKafkaBridge({ name: "chat-messages", partitions: 2 });
});

afterAll(async () => {
  await local?.close();
});

describe("local Kafka bridge", () => {
  it("feeds what the API publishes to events-consumer, which projects it once per event", async () => {
    const created = (await fetch(`${local.runner.url}/sessions/create`, { method: "POST" }).then((r) =>
      r.json(),
    )) as {
      session: { session_id: string };
      token: string;
    };
    const sid = created.session.session_id as string;
    const posted = await fetch(`${local.runner.url}/messages/post`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${created.token}` },
      body: JSON.stringify({ session_id: sid, content: "through the bridge" }),
    });
    expect(posted.status).toBe(201);
    let row: Record<string, unknown> | undefined;
    for (let i = 0; i < 150 && !row; i++) {
      const res = await local.db.pool.query(
        "SELECT * FROM session_activity WHERE session_id = $1 AND messages_created = 3",
        [sid],
      );
      row = res.rows[0];
      if (!row) await new Promise((r) => setTimeout(r, 100));
    }
    expect(row).toMatchObject({ sessions_created: 1, messages_created: 3, messages_edited: 0 });
  });
});
