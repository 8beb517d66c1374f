import { createRequire } from "node:module";
import type { Redis } from "ioredis";
import { config } from "../config.ts";

let client: Redis | null | undefined;

/** One Redis command as a pipeline sends it (`pipeline.call(...command)`). */
export type RedisCommand = readonly [string, ...(string | number)[]];

/**
 * ioredis, loaded on the first getRedis() that needs a client rather than when this module loads: the rate limiter
 * imports this module in every HTTP function, and the ones that never talk to Redis (openapi, rate-limit exempt)
 * then skip its ~35 ms of require time. Functions that do use Redis import "ioredis" themselves
 * (chat-runtime.ts, health.ts), so they still load it during init.
 * A plain `require` where there is one, which esbuild bundles (bundled mode) or leaves to the layer (layer mode);
 * Node running the ESM sources has none and takes createRequire's. ioredis is CommonJS only: both give the
 * same module instance as an `import` of it.
 */
function ioredis(): typeof import("ioredis") {
  return typeof require === "function" ? require("ioredis") : createRequire(import.meta.url)("ioredis");
}

/**
 * One ioredis client per process, or null when REDIS_URL is unset. Redis is only a cache: short timeouts,
 * no offline queue (a command while disconnected fails at once), no per-command retries.
 */
export function getRedis(): Redis | null {
  if (client !== undefined) return client;
  const cfg = config();
  if (!cfg.REDIS_URL) {
    client = null;
    return client;
  }
  const { Redis } = ioredis();
  client = new Redis(cfg.REDIS_URL, {
    connectTimeout: cfg.REDIS_CONNECT_TIMEOUT_MS,
    commandTimeout: cfg.REDIS_COMMAND_TIMEOUT_MS,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // Keep trying in the background, at most every 2 s, so the cache comes back by itself.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    tls: cfg.REDIS_TLS ? {} : undefined,
    lazyConnect: false,
  });
  client.on("error", () => {}); // failures surface per command; the cache treats them as misses
  return client;
}

/** Waits (bounded) for the first connection, so a cold start does not begin with a cache miss storm. */
export async function redisReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === "ready") return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    redis.once("ready", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export async function closeRedis(): Promise<void> {
  const c = client;
  client = undefined;
  if (c) c.disconnect();
}
