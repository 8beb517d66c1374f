import { Logger } from "@aws-lambda-powertools/logger";

/**
 * One Powertools logger per process. Log lines carry ids, routes, statuses and timings only:
 * never message text, tokens or request bodies.
 */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "chat-backend" });
