import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { disconnectProducer, publishRecords } from "../../layers/chat/events/kafka-producer.ts";
import { type MockKafka, startMockKafka } from "../helpers/kafka-mock-cluster.ts";

let kafka: MockKafka;
beforeAll(() => {
  kafka = startMockKafka({ brokers: 3 });
});
afterAll(async () => {
  await disconnectProducer();
  kafka.stop();
});

describe("kafkajs idle-timer fix", () => {
  it("an idle connected producer schedules no timers (kafkajs 2.2.4 alone wakes every 1 ms per connection)", async () => {
    const config = { brokers: kafka.brokers, clientId: "idle-test", ssl: false, auth: "none" as const };
    await publishRecords([{ topic: "idle", key: "k", value: "v", headers: {} }], { timeoutMs: 5000, config });
    await new Promise((r) => setTimeout(r, 100)); // let the send's own timers settle
    // counts the timers kafkajs schedules while idle; the wait itself uses setImmediate, which is not counted
    const spy = vi.spyOn(globalThis, "setTimeout");
    let calls: number;
    try {
      // the count is taken inside the callback and asserted out here: a failed assertion inside it would be an
      // uncaught error and a test left waiting for its timeout
      calls = await new Promise<number>((resolve) => {
        const started = Date.now();
        setImmediate(function wait() {
          if (Date.now() - started < 200) setImmediate(wait);
          else resolve(spy.mock.calls.length);
        });
      });
    } finally {
      spy.mockRestore();
    }
    expect(calls).toBeLessThan(5);
  });
});
