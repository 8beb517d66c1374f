import type { Config } from "../config.ts";
import type { Check } from "../health/health-check.ts";

/** The Kafka probe for /health, or undefined when Kafka is not configured ("disabled"). */
export function kafkaHealthProbe(cfg: Config): ((timeoutMs: number) => Promise<Check>) | undefined {
  if (cfg.KAFKA_BROKERS.length === 0 && !cfg.MSK_CLUSTER_ARN) return undefined;
  return async (timeoutMs) => {
    const { kafkaPing } = await import("./kafka-runtime.ts");
    return kafkaPing(cfg, timeoutMs);
  };
}
