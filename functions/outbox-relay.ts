import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { config } from "#chat/config.ts";
import { getPool, queryTimeoutMs } from "#chat/db/pool.ts";
import {
  expireUnpublished,
  type RelayResult,
  relayOutbox,
  relayReserveMs,
} from "#chat/events/outbox-relay.ts";
import { oldestPendingAgeSeconds } from "#chat/events/outbox-store.ts";
import { LOG_CONTEXT, logger } from "./http/logger.ts";
import { newMetrics, publishMetrics } from "./http/metrics.ts";
import { MIDDY_OPTIONS } from "./http/middy-options.ts";

const metrics = newMetrics();

export class RelayIncompleteError extends Error {
  override name = "RelayIncompleteError";
  constructor(result: RelayResult) {
    super(`published ${result.published} events in ${result.batches} batches, then: ${result.error}`);
  }
}

/**
 * Every minute (and on demand): publishes whatever the request fast path left in the outbox, oldest first.
 * Runs until the outbox is empty or its time is nearly up; a run that stops on an error fails (RelayIncompleteError),
 * and what it did not mark is published by the next. Each run reports the age of the oldest event left waiting
 * (OutboxOldestPendingSeconds), which alarms on a backlog that does not drain, failing or not. Without Kafka it
 * publishes nothing and reports nothing: it takes events past OUTBOX_RETENTION_HOURS off the queue (expireUnpublished).
 */
export const handler = middy<
  unknown,
  RelayResult & { kafka: "on" | "off"; expired?: number },
  Error,
  Context
>(MIDDY_OPTIONS)
  .use(injectLambdaContext(logger, LOG_CONTEXT))
  .use(publishMetrics(metrics))
  .handler(async (_event, context) => {
    const cfg = config();
    const { kafkaEnabled, publishEvents } = await import("#chat/events/kafka-runtime.ts");
    // Publishing stops this long before the function's timeout (20 s by default): the last marks still fit.
    const reserve = relayReserveMs({
      queryTimeoutMs: queryTimeoutMs(cfg),
      connectTimeoutMs: cfg.DB_CONNECT_TIMEOUT_MS,
    });
    // The pool first: in a new sandbox it reads the database secret, and the budget counts from after that.
    const pool = await getPool();
    const budget = Math.max(1000, context.getRemainingTimeInMillis() - reserve);
    if (!kafkaEnabled(cfg)) {
      // Nothing publishes: past OUTBOX_RETENTION_HOURS the queue's events (their text) go the way published ones go.
      const expired = await expireUnpublished(pool, {
        retentionHours: cfg.OUTBOX_RETENTION_HOURS,
        batchSize: cfg.OUTBOX_BATCH_SIZE,
        timeBudgetMs: budget,
      });
      return {
        skipped: true,
        published: 0,
        batches: 0,
        kafka: "off" as const,
        ...(expired ? { expired } : {}),
      };
    }
    const result = await relayOutbox(pool, (events, timeoutMs) => publishEvents(cfg, events, timeoutMs), {
      batchSize: cfg.OUTBOX_BATCH_SIZE,
      batchBytes: cfg.KAFKA_MAX_BATCH_BYTES,
      timeBudgetMs: budget,
    });
    await reportBacklogAge();
    // A run that stopped on an error fails its invocation, so Lambda's Errors metric (and its alarm) sees it.
    if (result.error) {
      logger.warn("relay stopped early", { error: result.error, published: result.published });
      throw new RelayIncompleteError(result);
    }
    return { ...result, kafka: "on" as const };
  });

/** The backlog's age as a metric; a failed read (Postgres down) is logged, never the run's outcome. */
async function reportBacklogAge(): Promise<void> {
  try {
    const age = await oldestPendingAgeSeconds(await getPool());
    metrics.addMetric("OutboxOldestPendingSeconds", MetricUnit.Seconds, age);
  } catch (err) {
    logger.warn("could not read the outbox backlog's age", { error: (err as Error).message });
  }
}
