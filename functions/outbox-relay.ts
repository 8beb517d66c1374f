import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { config } from "#chat/config.ts";
import { getPool, queryTimeoutMs } from "#chat/db/pool.ts";
import { type RelayResult, relayOutbox, relayReserveMs } from "#chat/events/outbox-relay.ts";
import { logger } from "./http/logger.ts";

export class RelayIncompleteError extends Error {
  override name = "RelayIncompleteError";
  constructor(result: RelayResult) {
    super(`published ${result.published} events in ${result.batches} batches, then: ${result.error}`);
  }
}

/**
 * Every minute (and on demand): publishes whatever the request fast path left in the outbox, oldest first.
 * Runs until the outbox is empty or its time is nearly up; a run that stops on an error fails (RelayIncompleteError),
 * and what it did not mark is published by the next.
 */
export const handler = middy<unknown, RelayResult & { kafka: "on" | "off" }, Error, Context>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .handler(async (_event, context) => {
    const cfg = config();
    const { kafkaEnabled, publishEvents } = await import("#chat/events/kafka-runtime.ts");
    if (!kafkaEnabled(cfg)) return { skipped: true, published: 0, batches: 0, kafka: "off" as const };
    // Publishing stops this long before the function's timeout (20 s by default): the last marks still fit.
    const reserve = relayReserveMs({
      queryTimeoutMs: queryTimeoutMs(cfg),
      connectTimeoutMs: cfg.DB_CONNECT_TIMEOUT_MS,
    });
    const budget = Math.max(1000, context.getRemainingTimeInMillis() - reserve);
    const result = await relayOutbox(
      await getPool(),
      (events, timeoutMs) => publishEvents(cfg, events, timeoutMs),
      { batchSize: cfg.OUTBOX_BATCH_SIZE, batchBytes: cfg.KAFKA_MAX_BATCH_BYTES, timeBudgetMs: budget },
    );
    // A run that stopped on an error fails its invocation, so Lambda's Errors metric (and its alarm) sees it.
    if (result.error) {
      logger.warn("relay stopped early", { error: result.error, published: result.published });
      throw new RelayIncompleteError(result);
    }
    return { ...result, kafka: "on" as const };
  });
