import { vi } from "vitest";
import { findFunction } from "../../functions/manifest.ts";
import { createFunctionRuntime, type FunctionRuntime } from "../../local/function-runtime.ts";
import type { HttpLambda } from "./lambda-events.ts";
import { resetRuntime } from "./runner-fixture.ts";

/**
 * The environment of a function run in the test's own process against `databaseUrl` alone: no Redis, no Kafka, no
 * rate limits, no log lines; `extra` on top. Undone by vi.unstubAllEnvs() and resetRuntime().
 */
export async function stubFunctionEnv(
  databaseUrl: string,
  extra: Record<string, string> = {},
): Promise<void> {
  vi.stubEnv("DATABASE_URL", databaseUrl);
  vi.stubEnv("RATE_LIMIT_PER_TOKEN", "0");
  vi.stubEnv("RATE_LIMIT_PER_IP", "0");
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "SILENT");
  for (const name of ["REDIS_URL", "KAFKA_BROKERS", "MSK_CLUSTER_ARN"]) vi.stubEnv(name, undefined);
  for (const [name, value] of Object.entries(extra)) vi.stubEnv(name, value);
  await resetRuntime();
}

/**
 * The manifest's `name` with `timeoutSeconds`, run by the local runner's runtime (which enforces the timeout, as
 * Lambda does) on its handler imported into this process.
 */
export async function shortFunction(name: string, timeoutSeconds: number) {
  const found = findFunction(name);
  if (!found) throw new Error(`no ${name} in the manifest`);
  const spec = { ...found, timeoutSeconds };
  const { handler } = (await import(`../../functions/${found.handler}.ts`)) as { handler: HttpLambda };
  const runtime: FunctionRuntime = createFunctionRuntime({
    functions: [spec],
    loadHandler: async () => handler as never,
    log: () => {},
  });
  return { spec, runtime };
}
