import { randomUUID } from "node:crypto";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../layers/chat/config.ts";
import { chatEvent } from "../../layers/chat/events/cloudevents.ts";
import { disconnectProducer } from "../../layers/chat/events/kafka-producer.ts";
import { kafkaPublisher } from "../../layers/chat/events/kafka-runtime.ts";
import { type RequestEvents, withRequestEvents } from "../../layers/chat/events/request-events.ts";
import { type MockKafka, readTopic, startMockKafka } from "../helpers/kafka-mock-cluster.ts";

/**
 * A request's after-commit publish that sent its events and then failed to mark them published (Postgres gone
 * between the commit and the mark): the events are on the topic (the relay sends them again, with the same ids), so
 * the access line must not say `events_not_sent` (bug 234's field), or the on-call looks for a record that was there
 * all along and takes the relay's copy for the only one.
 */
let kafka: MockKafka;
beforeAll(() => {
  kafka = startMockKafka({ brokers: 1, topics: [{ name: "chat-messages", partitions: 1 }] });
  vi.spyOn(console, "error").mockImplementation(() => {});
});
afterAll(async () => {
  vi.restoreAllMocks();
  await disconnectProducer();
  kafka?.stop();
});

/** A pool whose every statement fails as a lost connection does. */
const lostPool = {
  query: () => Promise.reject(new Error("Connection terminated unexpectedly")),
} as unknown as pg.Pool;

describe("a request's publish that sent its events but could not mark them", () => {
  it("does not say its events were not sent", async () => {
    const cfg = parseConfig({ KAFKA_BROKERS: kafka.bootstrap, KAFKA_PUBLISH_TIMEOUT_MS: "5000" });
    const id = randomUUID();
    const event = chatEvent("chat.session.created", id, new Date().toISOString(), {
      session_id: id,
      user_id: null,
    });
    const noted: RequestEvents = { ids: [] };
    await withRequestEvents(noted, () => kafkaPublisher(cfg, lostPool).afterCommit(id, [event], false));
    const records = await readTopic(kafka.bootstrap, "chat-messages", {
      timeoutMs: 5000,
      until: (rs) => rs.some((r) => r.headers.ce_id === event.id),
    });
    expect(records.map((r) => r.headers.ce_id)).toContain(event.id);
    // "Error" (the mark's failure, named as the reason the events were not sent) before
    expect(noted.notSent).toBeUndefined();
  });
});
