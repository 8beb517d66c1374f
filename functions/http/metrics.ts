import { Metrics } from "@aws-lambda-powertools/metrics";
import { SERVICE_NAME } from "./logger.ts";

/**
 * A function's Powertools metrics (EMF): the stack's namespace and service, and the same ones in a local run, where
 * Powertools would say `service_undefined` (the alarms' dimensions name the service).
 */
export const newMetrics = (): Metrics =>
  new Metrics({
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? "ChatBackend",
    serviceName: SERVICE_NAME,
  });
