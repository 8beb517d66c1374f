import type { Backend } from "#functions/manifest.ts";

/** A data plane's env vars by what they connect to (names from layers/chat/config.ts). */
export type BackendEnvironment = Record<"postgres" | "redis" | "kafka", Record<string, string>>;

/** The variables of the backends a function uses, and no others: one that does not use Kafka never loads it. */
export function environmentOf(env: BackendEnvironment, uses: readonly Backend[]): Record<string, string> {
  const kafka = uses.includes("kafka-produce") || uses.includes("kafka-describe");
  return {
    ...(uses.includes("postgres") ? env.postgres : {}),
    ...(uses.includes("redis") ? env.redis : {}),
    ...(kafka ? env.kafka : {}),
  };
}
