import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { disconnectProducer } from "../../layers/chat/events/kafka-producer.ts";
import type { FreezingProxy } from "../helpers/freezing-proxy.ts";
import { type MockKafka, type ReadRecord, readTopic, startMockKafka } from "../helpers/kafka-mock-cluster.ts";
import {
  createSession,
  type RunnerBehindProxy,
  type RunnerFixture,
  runnerBehindFreezingProxy,
} from "../helpers/runner-fixture.ts";
import type { TestDatabase } from "../helpers/test-database.ts";

/**
 * One request followed across the system on the local runner, as an on-call engineer would with a client's
 * x-request-id: its access line, the rows it wrote, the records on the topic (read from the mock cluster), and back
 * from a record to the request. The functions run in this process, so their log lines are captured here.
 */
const TOPIC = "chat-messages";
let kafka: MockKafka;
let db: TestDatabase;
// Postgres through a proxy that can stop forwarding its replies (a change made, its answer lost)
let proxy: FreezingProxy;
let fx: RunnerFixture;
let setup: RunnerBehindProxy | undefined;
const printed: string[] = [];

beforeAll(async () => {
  kafka = startMockKafka({ brokers: 3, topics: [{ name: TOPIC, partitions: 4 }] });
  setup = await runnerBehindFreezingProxy({
    DB_STATEMENT_TIMEOUT_MS: "300",
    KAFKA_BROKERS: kafka.bootstrap,
    // room for a cold producer on a loaded machine: a publish past it would be `timeout`, not sent
    KAFKA_PUBLISH_TIMEOUT_MS: "5000",
    POWERTOOLS_LOG_LEVEL: "INFO",
  });
  ({ db, proxy, fx } = setup);
  const keep = ((chunk: unknown) => {
    printed.push(String(chunk));
    return true;
  }) as typeof process.stdout.write;
  vi.spyOn(process.stdout, "write").mockImplementation(keep);
  vi.spyOn(process.stderr, "write").mockImplementation(keep);
  // kafkajs's own lines while the brokers are down (console.error), kept out of the test's output
  vi.spyOn(console, "error").mockImplementation(() => {});
});
afterAll(async () => {
  vi.restoreAllMocks();
  await setup?.close();
  await disconnectProducer();
  kafka?.stop();
});

/** The functions' access lines so far. */
const logLines = () =>
  printed
    .join("")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
const accessLines = () => logLines().filter((l) => l.message === "request");

const accessLineOf = (requestId: string | null) => {
  const line = accessLines().find((l) => l.request_id === requestId);
  expect(line, `no access line for ${requestId}`).toBeDefined();
  return line as Record<string, unknown>;
};

async function post(session: { sessionId: string; token: string }, content: string) {
  const res = await fx.call("POST", "/messages/post", {
    json: { session_id: session.sessionId, content },
    token: session.token,
  });
  expect(res.status, res.text).toBe(201);
  return res.headers.get("x-request-id");
}

/** The outbox's event ids of a session written after outbox row `afterId`. */
async function eventsWritten(sessionId: string, afterId = "0") {
  const rows = await db.pool.query<{ id: string; event_id: string }>(
    "SELECT id, event_id FROM outbox WHERE session_id = $1 AND id > $2 ORDER BY id",
    [sessionId, afterId],
  );
  return rows.rows;
}

const onTopic = (ids: string[]) =>
  readTopic(kafka.bootstrap, TOPIC, {
    timeoutMs: 15_000,
    until: (recs) => ids.every((id) => recs.some((r) => r.headers.ce_id === id)),
  });

describe("from a request to its events on the topic, and back", () => {
  it("a post's access line names the events it wrote, and each of its records leads back to it", async () => {
    const session = await createSession(fx);
    const before = (await eventsWritten(session.sessionId)).at(-1)?.id;
    const requestId = await post(session, "hello");
    const written = (await eventsWritten(session.sessionId, before)).map((r) => r.event_id);
    expect(written).toHaveLength(2); // the message and the bot's reply

    const access = accessLineOf(requestId);
    expect(access).toMatchObject({ function: "messages-post", session_id: session.sessionId });
    expect(access.event_ids).toEqual(written);
    expect(access.events_not_sent).toBeUndefined(); // the request's own publish sent them

    // and back: every record on the topic names, by its ce_id, the one request whose line lists it
    const records = await onTopic(written);
    const ofRequest = (r: ReadRecord) =>
      accessLines().filter((l) => (l.event_ids as string[] | undefined)?.includes(r.headers.ce_id ?? ""));
    for (const r of records.filter((rec) => rec.key === session.sessionId)) {
      const lines = ofRequest(r);
      expect(lines, `record ${r.headers.ce_id}`).toHaveLength(1);
    }
    for (const id of written) {
      const record = records.find((r) => r.headers.ce_id === id) as ReadRecord;
      expect(ofRequest(record).map((l) => l.request_id)).toEqual([requestId]);
    }
  });

  it("a request whose events its publish could not send says so, and the relay's copies keep their ids", async () => {
    const session = await createSession(fx);
    const before = (await eventsWritten(session.sessionId)).at(-1)?.id;
    kafka.setAllDown();
    let down: string | null;
    let skipped: string | null;
    try {
      down = await post(session, "is anyone there?");
      skipped = await post(session, "and now?"); // within the 5 s the fast path rests after a failure
    } finally {
      kafka.setAllUp();
    }
    const written = (await eventsWritten(session.sessionId, before)).map((r) => r.event_id);
    expect(written).toHaveLength(4);

    const failed = accessLineOf(down);
    expect(failed.event_ids).toEqual(written.slice(0, 2));
    // a fixed word (the bound, or the Kafka error's name), never a message
    expect(failed.events_not_sent).toMatch(/^[A-Za-z]+$/);
    expect(accessLineOf(skipped)).toMatchObject({
      event_ids: written.slice(2),
      events_not_sent: "backoff",
    });

    const relay = (await fx.runner.invoke("outbox-relay", {})) as { published: number };
    expect(relay.published).toBeGreaterThanOrEqual(4);
    const records = await onTopic(written);
    for (const id of written) expect(records.some((r) => r.headers.ce_id === id)).toBe(true);
  });

  it("a 503 that says its post may have been made names the events to look for", async () => {
    const session = await createSession(fx);
    const before = (await eventsWritten(session.sessionId)).at(-1)?.id;
    const res = await proxy.during(
      () => proxy.freezeRepliesAfter("did this arrive?"),
      () =>
        fx.call("POST", "/messages/post", {
          json: { session_id: session.sessionId, content: "did this arrive?" },
          token: session.token,
        }),
    );
    expect(res.status, res.text).toBe(503);
    const requestId = res.headers.get("x-request-id");
    // Postgres made it: its events are in the outbox, and nothing in the request's log said which they were
    const written = (await eventsWritten(session.sessionId, before)).map((r) => r.event_id);
    expect(written).toHaveLength(2);
    const failed = logLines().find((l) => l.message === "request failed" && l.request_id === requestId);
    expect(failed, "the 503's error line").toBeDefined();
    expect(failed?.maybe_event_ids).toEqual(written);
    expect(accessLineOf(requestId)).toMatchObject({ status: 503, maybe_event_ids: written });
    expect(accessLineOf(requestId).event_ids).toBeUndefined();

    // the relay publishes them, with those ids
    await fx.runner.invoke("outbox-relay", {});
    const records = await onTopic(written);
    for (const id of written) expect(records.some((r) => r.headers.ce_id === id)).toBe(true);
  });

  it("a 503 that says an erase may have been made names its erased event", async () => {
    const session = await createSession(fx);
    const before = (await eventsWritten(session.sessionId)).at(-1)?.id ?? "0";
    // Postgres silent for every connection from the COMMIT on: the erase's check of its outcome cannot be made
    const res = await proxy.during(
      () => proxy.freezeRepliesAfter("COMMIT"),
      () => fx.call("DELETE", `/sessions/${session.sessionId}`, { token: session.token }),
    );
    expect(res.status, res.text).toBe(503);
    const requestId = res.headers.get("x-request-id");
    // the erase committed: its event is in the outbox
    const written = await db.pool.query<{ event_id: string }>(
      "SELECT event_id FROM outbox WHERE session_id = $1 AND id > $2 AND event_type = 'chat.session.erased'",
      [session.sessionId, before],
    );
    expect(written.rows).toHaveLength(1);
    expect(accessLineOf(requestId)).toMatchObject({
      status: 503,
      maybe_event_ids: [written.rows[0]?.event_id],
    });
  });

  it("an erase's access line names its erased event", async () => {
    const session = await createSession(fx);
    const res = await fx.call("DELETE", `/sessions/${session.sessionId}`, { token: session.token });
    expect(res.status, res.text).toBe(204);
    const written = await db.pool.query<{ event_id: string }>(
      "SELECT event_id FROM outbox WHERE session_id = $1 AND event_type = 'chat.session.erased'",
      [session.sessionId],
    );
    expect(written.rows).toHaveLength(1);
    expect(accessLineOf(res.headers.get("x-request-id"))).toMatchObject({
      function: "session-erase",
      event_ids: [written.rows[0]?.event_id],
    });
  });

  it("a 503 that says its create may have been made names the events to look for", async () => {
    const userId = `trace-${randomUUID()}`;
    // its statement reaches Postgres, which commits it; the reply is lost
    const res = await proxy.during(
      () => proxy.freezeRepliesAfter(userId),
      () => fx.call("POST", "/sessions/create", { json: { user_id: userId } }),
    );
    expect(res.status, res.text).toBe(503);
    // Postgres made it: the session and its events are there
    const written = await db.pool.query<{ event_id: string }>(
      "SELECT o.event_id FROM outbox o JOIN sessions s USING (session_id) WHERE s.user_id = $1 ORDER BY o.id",
      [userId],
    );
    expect(written.rows.length).toBeGreaterThan(0);
    expect(accessLineOf(res.headers.get("x-request-id"))).toMatchObject({
      status: 503,
      maybe_event_ids: written.rows.map((r) => r.event_id),
    });
  });
});
