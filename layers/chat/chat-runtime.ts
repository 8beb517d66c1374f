// The Redis driver at init: redis-client.ts requires it on first use only (for functions that never use Redis).
import "ioredis";
import type pg from "pg";
import { CacheGuard } from "./cache/cache-guard.ts";
import { getRedis, redisReady } from "./cache/redis-client.ts";
import { SessionCache } from "./cache/session-cache.ts";
import { ChatService } from "./chat/chat-service.ts";
import { type Config, config } from "./config.ts";
import { getPool } from "./db/pool.ts";
import { type EventPublisher, outboxOnlyPublisher } from "./events/event-publisher.ts";
import { selectResponder } from "./responders/select-responder.ts";

/**
 * The process-wide wiring, built on first use and reused across invocations (Lambda keeps the process
 * warm). Handlers call this; tests build ChatService directly with their own pool and cache.
 */
let service: Promise<ChatService> | undefined;
let cacheGuard: CacheGuard | null = null;

export function getChatService(): Promise<ChatService> {
  service ??= build().catch((err) => {
    service = undefined;
    throw err;
  });
  return service;
}

export function getCacheGuard(): CacheGuard | null {
  return cacheGuard;
}

async function build(): Promise<ChatService> {
  const cfg = config();
  const pool = await getPool();
  const redis = getRedis();
  if (redis) await redisReady(redis, cfg.REDIS_CONNECT_TIMEOUT_MS * 4);
  cacheGuard = redis
    ? new CacheGuard(
        new SessionCache(redis, {
          sessionTtlSeconds: cfg.CACHE_SESSION_TTL_SECONDS,
          historyTtlSeconds: cfg.CACHE_HISTORY_TTL_SECONDS,
          historyMaxBytes: cfg.CACHE_HISTORY_MAX_BYTES,
          batchTimeoutMs: cfg.REDIS_COMMAND_TIMEOUT_MS * 2,
        }),
        pool,
      )
    : null;
  const publisher = await eventPublisher(cfg, pool);
  return new ChatService({
    pool,
    cache: cacheGuard,
    responder: selectResponder(cfg),
    publisher,
    config: cfg,
  });
}

/** kafkajs is loaded only where Kafka is configured: without it, events simply wait in the outbox. */
async function eventPublisher(cfg: Config, pool: pg.Pool): Promise<EventPublisher> {
  if (cfg.KAFKA_BROKERS.length === 0 && !cfg.MSK_CLUSTER_ARN) return outboxOnlyPublisher;
  const { kafkaPublisher } = await import("./events/kafka-runtime.ts");
  return kafkaPublisher(cfg, pool);
}

/** For tests and the local runner's shutdown. */
export function resetChatRuntime(): void {
  service = undefined;
  cacheGuard = null;
}
