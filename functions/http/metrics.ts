import { Metrics } from "@aws-lambda-powertools/metrics";
import type middy from "@middy/core";
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

/**
 * Powertools' logMetrics, minus its "No application metrics to publish" warning, a plain-text line on every
 * invocation that recorded none: the relay without Kafka (every minute, by design: its backlog alarm expects no
 * data there) and any run that failed before its metric (Postgres away, already reported as the run's error).
 */
export function publishMetrics(metrics: Metrics): middy.MiddlewareObj {
  const publish = () => {
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
  };
  return { after: publish, onError: publish };
}
