import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import { getCacheGuard, getChatService } from "#chat/chat-runtime.ts";
import { config } from "#chat/config.ts";
import { getPool } from "#chat/db/pool.ts";
import { type MaintenanceResult, runMaintenance } from "#chat/maintenance/maintenance.ts";
import { logger } from "./http/logger.ts";

/** Hourly: prune the outbox and idempotency records, purge idle sessions (SESSION_RETENTION_DAYS > 0). */
export const handler = middy<unknown, MaintenanceResult>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .handler(async () => {
    const cfg = config();
    await getChatService(); // builds the cache guard
    const result = await runMaintenance(await getPool(), getCacheGuard(), {
      outboxRetentionHours: cfg.OUTBOX_RETENTION_HOURS,
      sessionRetentionDays: cfg.SESSION_RETENTION_DAYS,
    });
    logger.info("maintenance", { ...result });
    return result;
  });
