import { Logger } from "@aws-lambda-powertools/logger";

/** The `service` of every log line and metric: the stack sets POWERTOOLS_SERVICE_NAME, a local run gets this. */
export const SERVICE_NAME = process.env.POWERTOOLS_SERVICE_NAME ?? "chat-backend";

/**
 * One Powertools logger per process. Log lines carry ids, routes, statuses and timings only:
 * never message text, tokens or request bodies.
 */
export const logger = new Logger({ serviceName: SERVICE_NAME });

/**
 * injectLambdaContext's options for every function. `logEvent: false` overrides POWERTOOLS_LOGGER_LOG_EVENT, a
 * standard Powertools switch an operator may set while debugging: the events carry bearer tokens, message text,
 * user ids and metadata (an HTTP request's headers and body, a Kafka record's CloudEvent).
 */
export const LOG_CONTEXT = { resetKeys: true, logEvent: false } as const;
