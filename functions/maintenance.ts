import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { getCacheGuard, getChatService } from "#chat/chat-runtime.ts";
import { config } from "#chat/config.ts";
import { getPool } from "#chat/db/pool.ts";
import {
  type EraseSessionsResult,
  eraseRequest,
  eraseSessions,
  type MaintenanceResult,
  runMaintenance,
} from "#chat/maintenance/maintenance.ts";
import { LOG_CONTEXT, logger } from "./http/logger.ts";
import { MIDDY_OPTIONS } from "./http/middy-options.ts";

/**
 * Hourly: prune the outbox, idempotency records and consumed event ids, purge idle sessions
 * (SESSION_RETENTION_DAYS > 0), within the function's time. Invoked by an operator with
 * `{"eraseSessions": [ids]}`, it erases those sessions instead (after a database restore: docs/deploy.md).
 */
export const handler = middy<unknown, MaintenanceResult | EraseSessionsResult, Error, Context>(MIDDY_OPTIONS)
  .use(injectLambdaContext(logger, LOG_CONTEXT))
  .handler(async (event, context) => {
    const cfg = config();
    const erase = eraseRequest(event);
    await getChatService(); // builds the cache guard
    const timeBudgetMs = Math.max(1000, context.getRemainingTimeInMillis() - 15_000);
    if (erase) {
      const result = await eraseSessions(await getPool(), getCacheGuard(), erase, Date.now() + timeBudgetMs);
      // One line per session, as session-erase's access line names its own: the invoke's payload is in no log, and
      // after a restore to before this erase the runbook (docs/deploy.md) finds the sessions to erase again here.
      for (const id of erase)
        if (!result.failed.includes(id)) logger.info("session erased", { session_id: id });
      (result.failed.length ? logger.warn : logger.info).call(logger, "maintenance erase", { ...result });
      return result;
    }
    const result = await runMaintenance(await getPool(), getCacheGuard(), {
      outboxRetentionHours: cfg.OUTBOX_RETENTION_HOURS,
      consumedEventsRetentionHours: cfg.CONSUMED_EVENTS_RETENTION_HOURS,
      sessionRetentionDays: cfg.SESSION_RETENTION_DAYS,
      timeBudgetMs,
    });
    // WARN when part of it did not happen: a session the purge could not erase (tried again next hour) or
    // invalidations left undrained; the run itself succeeded, so no error alarm sees either.
    const partial = result.sessionsFailed > 0 || result.cacheInvalidationsDrained === false;
    (partial ? logger.warn : logger.info).call(logger, "maintenance", { ...result });
    return result;
  });
