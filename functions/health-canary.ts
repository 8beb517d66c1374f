import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import middy from "@middy/core";
import { config } from "#chat/config.ts";
import { type ProbeResult, probeHealth } from "#chat/health/health-probe.ts";
import { LOG_CONTEXT, logger } from "./http/logger.ts";
import { newMetrics, publishMetrics } from "./http/metrics.ts";
import { MIDDY_OPTIONS } from "./http/middy-options.ts";

const metrics = newMetrics();

/**
 * Every 5 minutes: calls the deployed GET /health through its public URL, like a user would, and records
 * HealthCheckLatency (ms), HealthCheckFailed (0/1) and HealthCheckDegraded (0/1: it answered, but Redis or Kafka
 * is down, which users do not see as errors) as CloudWatch metrics (EMF); alarms watch them.
 */
export const handler = middy<unknown, ProbeResult & { url: string }>(MIDDY_OPTIONS)
  .use(injectLambdaContext(logger, LOG_CONTEXT))
  .use(publishMetrics(metrics))
  .handler(async () => {
    const url = config().HEALTH_URL;
    if (!url) throw new Error("HEALTH_URL is not set");
    const result = await probeHealth(url, 10_000);
    metrics.addMetric("HealthCheckLatency", MetricUnit.Milliseconds, result.latency_ms);
    metrics.addMetric("HealthCheckFailed", MetricUnit.Count, result.ok ? 0 : 1);
    const degraded = result.ok && result.health === "degraded";
    metrics.addMetric("HealthCheckDegraded", MetricUnit.Count, degraded ? 1 : 0);
    // a failed or degraded probe at WARN, so a filter on WARN and above finds what the alarms fire on
    (result.ok && !degraded ? logger.info : logger.warn).call(logger, "health probe", { ...result });
    return { ...result, url };
  });
