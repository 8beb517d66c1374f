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
    const spy = vi.spyOn(globalThis, "setTimeout");
    await new Promise<void>((r) => {
      // a native timer outside the spy, so the wait itself is not counted
      spy.mockRestore();
      const started = Date.now();
      const spy2 = vi.spyOn(globalThis, "setTimeout");
      setImmediate(function wait() {
        if (Date.now() - started < 200) setImmediate(wait);
        else {
          const calls = spy2.mock.calls.length;
          spy2.mockRestore();
          expect(calls).toBeLessThan(5);
          r();
        }
      });
    });
  });
});
