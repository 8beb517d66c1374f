import { randomUUID } from "node:crypto";
import { createServer, type Socket } from "node:net";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../layers/chat/config.ts";
import { chatEvent } from "../../layers/chat/events/cloudevents.ts";
import { disconnectProducer } from "../../layers/chat/events/kafka-producer.ts";
import { kafkaPublisher } from "../../layers/chat/events/kafka-runtime.ts";
import { type RequestEvents, withRequestEvents } from "../../layers/chat/events/request-events.ts";
import { runInRequest } from "../../layers/chat/request-context.ts";

/**
 * A request's after-commit publish that ran past its bound (a broker that takes the connection and never answers)
 * names it on the request's access line (bug 234): `timeout`, then `backoff` for the requests that skip Kafka after
 * it. tests/e2e/request-trace.test.ts covers a Kafka error with every broker down.
 */
const sockets: Socket[] = [];
const silent = createServer((s) => void sockets.push(s));
let broker: string;
beforeAll(async () => {
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  broker = `127.0.0.1:${(silent.address() as { port: number }).port}`;
  vi.spyOn(console, "error").mockImplementation(() => {}); // kafkajs's lines about the silent broker
  vi.spyOn(console, "warn").mockImplementation(() => {});
});
afterAll(async () => {
  vi.restoreAllMocks();
  for (const s of sockets) s.destroy();
  silent.close();
  await disconnectProducer();
});

describe("a request's publish that did not send its events", () => {
  it("says `timeout` when it ran past KAFKA_PUBLISH_TIMEOUT_MS, and `backoff` for the next request", async () => {
    const cfg = parseConfig({ KAFKA_BROKERS: broker, KAFKA_PUBLISH_TIMEOUT_MS: "200" });
    const publisher = kafkaPublisher(cfg, {} as pg.Pool); // nothing is sent, so nothing is marked
    const send = async () => {
      const event = chatEvent("chat.session.created", randomUUID(), new Date().toISOString(), {
        session_id: randomUUID(),
      });
      const noted: RequestEvents = { ids: [] };
      await withRequestEvents(noted, () => publisher.afterCommit(event.subject, [event], false));
      return noted.notSent;
    };
    expect(await send()).toBe("timeout");
    expect(await send()).toBe("backoff");
  });

  // A request's deadline bounds its publish too (bug 211): the relay sends what the request had no time left for.
  it("says `deadline` when the request has no time left, and leaves the next request its fast path", async () => {
    const cfg = parseConfig({ KAFKA_BROKERS: broker, KAFKA_PUBLISH_TIMEOUT_MS: "200" });
    const publisher = kafkaPublisher(cfg, {} as pg.Pool);
    const event = chatEvent("chat.session.created", randomUUID(), new Date().toISOString(), {
      session_id: randomUUID(),
    });
    const noted: RequestEvents = { ids: [] };
    await runInRequest({ deadline: Date.now() - 1, events: noted }, () =>
      publisher.afterCommit(event.subject, [event], false),
    );
    expect(noted.notSent).toBe("deadline");
    // no backoff: nothing failed, so the next request (with time left) tries Kafka, and times out on this broker
    const next: RequestEvents = { ids: [] };
    await withRequestEvents(next, () => publisher.afterCommit(event.subject, [event], false));
    expect(next.notSent).toBe("timeout");
  });
});
