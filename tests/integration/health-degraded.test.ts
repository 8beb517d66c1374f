import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { getRedis } from "../../layers/chat/cache/redis-client.ts";
import { httpEvent, lambdaContext } from "../helpers/lambda-events.ts";
import { resetRuntime } from "../helpers/runner-fixture.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * GET /health with Postgres up and Redis unreachable: chats are still served (from Postgres), so the answer is
 * 200 "degraded" (a load balancer or the canary must not take the API out), not 503.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase(2);
  vi.stubEnv("DATABASE_URL", db.url);
  // nothing listens on port 1: every connection is refused
  vi.stubEnv("REDIS_URL", "redis://127.0.0.1:1");
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "SILENT");
  vi.stubEnv("KAFKA_BROKERS", undefined);
  vi.stubEnv("MSK_CLUSTER_ARN", undefined);
  await resetRuntime();
});
afterAll(async () => {
  await resetRuntime();
  vi.unstubAllEnvs();
  await db?.drop();
});

type Handler = (e: APIGatewayProxyEventV2, c: Context) => Promise<APIGatewayProxyStructuredResultV2>;

describe("GET /health with Redis down", () => {
  it("answers 200 degraded, reporting Redis down and Postgres ok", async () => {
    const { handler } = (await import("../../functions/health.ts")) as { handler: Handler };
    const res = await handler(httpEvent("GET", "/health"), lambdaContext("health"));
    expect(res.statusCode).toBe(200);
    expect(res.headers?.["cache-control"]).toBe("no-store");
    expect(JSON.parse(String(res.body))).toMatchObject({
      status: "degraded",
      checks: {
        postgres: { status: "ok" },
        redis: { status: "down", latency_ms: null },
        kafka: { status: "disabled", latency_ms: null },
      },
    });
  });

  it("leaves no listener on the Redis client per check, however long the outage", async () => {
    const { handler } = (await import("../../functions/health.ts")) as { handler: Handler };
    const redis = getRedis();
    if (!redis) throw new Error("REDIS_URL is set: there is a client");
    const before = redis.listenerCount("ready");
    // a load balancer's or uptime check's probes during an outage: each used to leave one, for good
    for (let i = 0; i < 12; i++) {
      const res = await handler(httpEvent("GET", "/health"), lambdaContext("health"));
      expect(JSON.parse(String(res.body)).checks.redis.status).toBe("down");
    }
    expect(redis.listenerCount("ready")).toBe(before);
  });
});
