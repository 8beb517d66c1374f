import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { httpEvent, lambdaContext } from "../helpers/lambda-events.ts";
import { RUNNER_REDIS_URL, resetRuntime } from "../helpers/runner-fixture.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * GET /health in a new sandbox: the Redis client is created by this very request and is still connecting (it
 * sends nothing before it is ready). A healthy Redis must not be reported down because the sandbox is new.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase(2);
  vi.stubEnv("DATABASE_URL", db.url);
  vi.stubEnv("REDIS_URL", RUNNER_REDIS_URL);
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "SILENT");
  vi.stubEnv("KAFKA_BROKERS", undefined);
  vi.stubEnv("MSK_CLUSTER_ARN", undefined);
});
afterAll(async () => {
  await resetRuntime();
  vi.unstubAllEnvs();
  await db?.drop();
});

type Handler = (e: APIGatewayProxyEventV2, c: Context) => Promise<APIGatewayProxyStructuredResultV2>;

describe("GET /health, the first request of a sandbox", () => {
  it("reports a healthy Redis ok, not down while its client connects", async () => {
    const { handler } = (await import("../../functions/health.ts")) as { handler: Handler };
    for (let sandbox = 0; sandbox < 3; sandbox++) {
      await resetRuntime(); // no Redis client, no pool: as in a new sandbox
      const res = await handler(httpEvent("GET", "/health"), lambdaContext("health"));
      const body = JSON.parse(String(res.body));
      expect(body.checks.redis.status, `sandbox ${sandbox}`).toBe("ok");
      expect(body.status).toBe("ok");
    }
  });
});
