import { randomUUID } from "node:crypto";
import { Metrics } from "@aws-lambda-powertools/metrics";
import type { Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { expireUnpublished, relayReserveMs } from "../../layers/chat/events/outbox-relay.ts";
import { runMaintenance } from "../../layers/chat/maintenance/maintenance.ts";
import { capturedOutput } from "../helpers/captured-output.ts";
import { lambdaContext } from "../helpers/lambda-events.ts";
import { resetRuntime } from "../helpers/runner-fixture.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * The scheduled relay reports a run that could not publish as a failed invocation: that is what Lambda's Errors
 * metric counts, and what the stack alarms on (a relay failing every minute leaves every event in the outbox).
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase(4);
  vi.stubEnv("DATABASE_URL", db.url);
  vi.stubEnv("KAFKA_BROKERS", "127.0.0.1:1"); // nothing listens there: every publish fails
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "SILENT");
  await resetRuntime();
});
afterAll(async () => {
  await resetRuntime();
  vi.unstubAllEnvs();
  await db?.drop();
});

type Handler = (event: unknown, context: Context) => Promise<unknown>;

describe("outbox-relay, the function", () => {
  it("fails its invocation when the run stops on an error, leaving the event for the next run, and reports its age", async () => {
    const id = randomUUID();
    await db.pool.query(
      `INSERT INTO outbox (event_id, session_id, event_type, event, created_at)
       VALUES ($1, $2, 'chat.message.created', $3, now() - interval '10 minutes')`,
      [id, randomUUID(), JSON.stringify({ specversion: "1.0", id, type: "chat.message.created", data: {} })],
    );
    const { handler } = (await import("../../functions/outbox-relay.ts")) as { handler: Handler };
    // a function with 2 s of publishing time left after its reserve
    const context = lambdaContext(
      "outbox-relay",
      relayReserveMs({ queryTimeoutMs: 6000, connectTimeoutMs: 2000 }) + 2000,
    );
    const addMetric = vi.spyOn(Metrics.prototype, "addMetric");
    const published = vi.spyOn(Metrics.prototype, "publishStoredMetrics");
    const failed = await handler({}, context).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(failed?.name).toBe("RelayIncompleteError");
    expect(failed?.message).toMatch(/^published 0 events in 0 batches, then: /);
    const left = await db.pool.query("SELECT count(*)::int AS n FROM outbox_pending");
    expect(left.rows[0].n).toBe(1);
    // the backlog's age reaches CloudWatch (EMF) even from a failed run: the stack's backlog alarm watches it
    const ages = addMetric.mock.calls.filter((c) => c[0] === "OutboxOldestPendingSeconds").map((c) => c[2]);
    addMetric.mockRestore();
    expect(published).toHaveBeenCalledTimes(1);
    published.mockRestore();
    expect(ages).toHaveLength(1);
    expect(ages[0]).toBeGreaterThanOrEqual(600);
    expect(ages[0]).toBeLessThan(900);
  });

  it("prints nothing on a run without Kafka: every minute, by design, with nothing to report", async () => {
    vi.stubEnv("KAFKA_BROKERS", undefined);
    await resetRuntime();
    const { handler } = (await import("../../functions/outbox-relay.ts")) as { handler: Handler };
    const run = () => handler({}, lambdaContext("outbox-relay", 60_000));
    const { result, printed } = await capturedOutput(async () => [await run(), await run()]).finally(
      async () => {
        vi.stubEnv("KAFKA_BROKERS", "127.0.0.1:1");
        await resetRuntime();
      },
    );
    expect(result).toMatchObject([{ kafka: "off" }, { kafka: "off" }]);
    // Powertools' logMetrics warned "No application metrics to publish" on each (a plain-text WARN line)
    expect(printed).toBe("");
  });

  it("without Kafka, an event's text leaves the outbox OUTBOX_RETENTION_HOURS after it was written, as a published one's does", async () => {
    vi.stubEnv("KAFKA_BROKERS", undefined);
    await resetRuntime();
    const session = randomUUID();
    const event = (id: string, content: string) =>
      JSON.stringify({ specversion: "1.0", id, type: "chat.message.created", data: { content } });
    const old = randomUUID();
    const recent = randomUUID();
    // an edit's earlier text, written 25 h ago, and a post of a minute ago: neither will ever be published
    await db.pool.query(
      `INSERT INTO outbox (event_id, session_id, event_type, event, created_at)
       VALUES ($1, $3, 'chat.message.created', $2, now() - interval '25 hours'),
              ($4, $3, 'chat.message.created', $5, now() - interval '1 minute')`,
      [old, event(old, "the text before the edit"), session, recent, event(recent, "a new post")],
    );
    try {
      const { handler } = (await import("../../functions/outbox-relay.ts")) as { handler: Handler };
      await handler({}, lambdaContext("outbox-relay", 60_000));
      await runMaintenance(db.pool, null, {
        outboxRetentionHours: 24,
        consumedEventsRetentionHours: 336,
        sessionRetentionDays: 0,
      });
    } finally {
      vi.stubEnv("KAFKA_BROKERS", "127.0.0.1:1");
      await resetRuntime();
    }
    const left = await db.pool.query(
      `SELECT o.event_id, p.id IS NOT NULL AS queued FROM outbox o LEFT JOIN outbox_pending p ON p.id = o.id
        WHERE o.session_id = $1`,
      [session],
    );
    // the old event stayed queued for good (no relay ever publishes it, and maintenance prunes published ones only)
    expect(left.rows).toEqual([{ event_id: recent, queued: true }]);
  });

  it("without Kafka, expires the queue oldest first, a batch at a time, until the time budget is spent", async () => {
    const own = await createTestDatabase(1); // a queue of its own: the tests above leave events queued
    try {
      const session = randomUUID();
      const ids = Array.from({ length: 7 }, () => randomUUID());
      for (const [i, id] of ids.entries())
        await own.pool.query(
          `INSERT INTO outbox (event_id, session_id, event_type, event, created_at)
           VALUES ($1, $2, 'chat.message.created', $3, now() - make_interval(hours => $4))`,
          [
            id,
            session,
            JSON.stringify({ specversion: "1.0", id, type: "chat.message.created", data: {} }),
            i < 5 ? 25 : 0,
          ],
        );
      const expire = (timeBudgetMs: number) =>
        expireUnpublished(own.pool, { retentionHours: 24, batchSize: 2, timeBudgetMs });
      expect(await expire(0)).toBe(2); // out of time after the first batch
      expect(await expire(60_000)).toBe(3); // the rest of the old ones, over two more batches
      const left = await own.pool.query(
        "SELECT o.event_id FROM outbox_pending p JOIN outbox o ON o.id = p.id ORDER BY p.id",
      );
      expect(left.rows.map((r) => r.event_id)).toEqual(ids.slice(5));
    } finally {
      await own.drop();
    }
  });
});
