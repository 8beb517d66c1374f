import { Redis } from "ioredis";
import { config } from "../config.ts";

let client: Redis | null | undefined;

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
