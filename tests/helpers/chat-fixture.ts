import { Redis } from "ioredis";
import type pg from "pg";
import { CacheGuard } from "../../layers/chat/cache/cache-guard.ts";
import { SessionCache } from "../../layers/chat/cache/session-cache.ts";
import { ChatService } from "../../layers/chat/chat/chat-service.ts";
import { type Config, parseConfig } from "../../layers/chat/config.ts";
import { buildPool } from "../../layers/chat/db/pool.ts";
import { type EventPublisher, outboxOnlyPublisher } from "../../layers/chat/events/event-publisher.ts";
import { builtinResponder } from "../../layers/chat/responders/builtin-responder.ts";
import type { Responder } from "../../layers/chat/responders/responder.ts";
import { createTestDatabase, type TestDatabase } from "./test-database.ts";

export interface ChatFixture {
  db: TestDatabase;
  chat: ChatService;
  cache: CacheGuard | null;
  /** The Redis cache under `cache` (tests reach past the guard to read it or make it fail). */
  sessionCache: SessionCache | null;
  redis: Redis | null;
  config: Config;
  /** The pool the service uses, built as in Lambda (db.pool is for the test's own checks). */
  servicePool: pg.Pool;
  close(): Promise<void>;
}

export const SHARED_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** A ChatService on this file's own database, with the real Redis cache unless `redisUrl: null`. */
export async function chatFixture(
  opts: {
    redisUrl?: string | null;
    responder?: Responder;
    /** Built from this fixture's config and pool (e.g. the Kafka publisher). */
    publisher?: (config: Config, pool: pg.Pool) => EventPublisher;
    env?: Record<string, string>;
    /** The role the service connects as (the test creates it); the owner's, as db.pool, by default. */
    databaseUser?: string;
  } = {},
): Promise<ChatFixture> {
  const db = await createTestDatabase(20);
  const redisUrl = opts.redisUrl === undefined ? SHARED_REDIS_URL : opts.redisUrl;
  const config = parseConfig({
    DATABASE_URL: db.url,
    DB_POOL_MAX: "20",
    ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
    // On the shared Redis the tests check what the cache holds, not timeouts: the product's 50 ms command timeout
    // could fire when CI's parallel suites load the CPU and turn an expected hit into a miss. Tests of timeouts
    // use a private redis-server (and the product default) or set it in `env`.
    ...(redisUrl === SHARED_REDIS_URL ? { REDIS_COMMAND_TIMEOUT_MS: "1000" } : {}),
    ...opts.env,
  });
  // the service gets a pool built exactly as in Lambda (timeouts, lock_timeout); db.pool is for the test's checks
  const serviceUrl = new URL(db.url);
  if (opts.databaseUser) serviceUrl.username = opts.databaseUser;
  const pool = buildPool(serviceUrl.toString(), config);
  const redis = redisUrl ? testRedis(redisUrl, config) : null;
  if (redis && redis.status !== "ready") await new Promise((r) => redis.once("ready", r));
  const sessionCache = redis
    ? new SessionCache(redis, {
        sessionTtlSeconds: 300,
        historyTtlSeconds: 300,
        historyMaxBytes: config.CACHE_HISTORY_MAX_BYTES,
        batchTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS * 2,
      })
    : null;
  const cache = sessionCache ? new CacheGuard(sessionCache, pool) : null;
  const chat = new ChatService({
    pool,
    cache,
    responder: opts.responder ?? builtinResponder,
    publisher: opts.publisher ? opts.publisher(config, pool) : outboxOnlyPublisher,
    config,
  });
  return {
    db,
    chat,
    cache,
    sessionCache,
    redis,
    config,
    servicePool: pool,
    async close() {
      redis?.disconnect();
      await pool.end();
      await db.drop();
    },
  };
}

/** The same client options as the runtime's getRedis(), on a URL of the test's choosing. */
export function testRedis(url: string, config: Config): Redis {
  const r = new Redis(url, {
    connectTimeout: config.REDIS_CONNECT_TIMEOUT_MS,
    commandTimeout: config.REDIS_COMMAND_TIMEOUT_MS,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => 100,
  });
  r.on("error", () => {});
  return r;
}

/** Counts rows of the tables a change touches, to prove a rejected request changed nothing. */
export async function rowCounts(pool: TestDatabase["pool"]) {
  const res = await pool.query(
    `SELECT (SELECT count(*) FROM sessions)::int AS sessions, (SELECT count(*) FROM messages)::int AS messages,
            (SELECT count(*) FROM outbox)::int AS outbox, (SELECT count(*) FROM outbox_pending)::int AS queued,
            (SELECT count(*) FROM idempotency_records)::int AS idempotency,
            (SELECT coalesce(sum(version), 0) FROM messages)::int AS versions,
            (SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL)::int AS deleted`,
  );
  return res.rows[0] as Record<string, number>;
}
