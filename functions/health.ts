// The Redis driver at init: redis-client.ts requires it on first use only (for functions that never use Redis).
import "ioredis";
import { getRedis, redisReady } from "#chat/cache/redis-client.ts";
import { config } from "#chat/config.ts";
import { getPool } from "#chat/db/pool.ts";
import { kafkaHealthProbe } from "#chat/events/kafka-health.ts";
import { checkHealth } from "#chat/health/health-check.ts";
import { httpHandler } from "./http/http-handler.ts";

/** GET /health: no auth, no writes; 503 when Postgres is down, "degraded" when Redis or Kafka is. */
export const handler = httpHandler({ name: "health", chat: false }, async () => {
  const cfg = config();
  const redis = getRedis();
  const timeoutMs = 1000;
  const health = await checkHealth({
    pool: getPool,
    // A new sandbox's client is still connecting, and sends nothing until it is ready (no offline queue): wait
    // for it, within the same bound, rather than report a healthy Redis down.
    redisPing: redis ? () => redisReady(redis, timeoutMs).then(() => redis.ping()) : undefined,
    kafkaPing: kafkaHealthProbe(cfg),
    version: cfg.SERVICE_VERSION,
    timeoutMs,
  });
  return {
    status: health.status === "down" ? 503 : 200,
    body: health,
    headers: { "cache-control": "no-store" },
  };
});
