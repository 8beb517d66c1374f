import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../layers/chat/config.ts";
import { chatEvent } from "../../layers/chat/events/cloudevents.ts";
import { disconnectProducer, getProducer } from "../../layers/chat/events/kafka-producer.ts";
import { publishEvents } from "../../layers/chat/events/kafka-runtime.ts";
import { type MockKafka, readTopic, startMockKafka } from "../helpers/kafka-mock-cluster.ts";

/**
 * A request's fast path gives Kafka 1 s. When a cold producer needs longer than that to connect (slow brokers,
 * TLS and SASL on a small Lambda), the producer must survive the timeout, or every later request starts cold and
 * times out too.
 */
let kafka: MockKafka;
beforeAll(() => {
  kafka = startMockKafka({ brokers: 3, topics: [{ name: "chat-messages", partitions: 4 }] });
  for (const id of [1, 2, 3]) kafka.setRtt(id, 350); // every request to every broker takes 350 ms
});
afterAll(async () => {
  await disconnectProducer();
  kafka?.stop();
});

const event = () => {
  const id = randomUUID();
  return chatEvent("chat.session.created", id, new Date().toISOString(), { session_id: id, user_id: null });
};

describe("a producer slower to connect than one request's bound", () => {
  it("keeps connecting after the first request timed out, so a later request finds it warm", async () => {
    const cfg = parseConfig({ KAFKA_BROKERS: kafka.bootstrap });
    const bound = 1000;
    await expect(publishEvents(cfg, [event()], bound)).rejects.toThrow(/timed out/);
    await new Promise((r) => setTimeout(r, 1500)); // the first request's connect and send finish meanwhile
    const started = performance.now();
    await publishEvents(cfg, [event()], bound);
    expect(performance.now() - started).toBeLessThan(bound);
  });

  it("never makes a send its caller gave up on: a frozen Lambda would make it minutes later, after a delete", async () => {
    await disconnectProducer();
    const cfg = parseConfig({ KAFKA_BROKERS: kafka.bootstrap });
    for (const id of [1, 2, 3]) kafka.setRtt(id, 700); // connecting alone outlasts the bound
    const [late, sent] = [event(), event()];
    await expect(publishEvents(cfg, [late], 1000)).rejects.toThrow(/timed out/);
    const connecting = getProducer();
    await new Promise((r) => setTimeout(r, 3000)); // the connect finishes meanwhile; the send must not follow
    expect(await getProducer()).toBe(await connecting); // and the refused send did not cost the connection
    for (const id of [1, 2, 3]) kafka.setRtt(id, 0);
    await publishEvents(cfg, [sent], 5000);
    const idOf = (r: { value: string | null }) => JSON.parse(r.value ?? "{}").id;
    const ids = (
      await readTopic(kafka.bootstrap, "chat-messages", {
        timeoutMs: 4000,
        // stops early only if the given-up send was made
        until: (records) => [late.id, sent.id].every((id) => records.some((r) => idOf(r) === id)),
      })
    ).map(idOf);
    expect(ids).not.toContain(late.id);
    expect(ids).toContain(sent.id);
  });
});
