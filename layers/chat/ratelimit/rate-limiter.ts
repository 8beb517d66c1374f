import type { Redis } from "ioredis";
import type { RedisCommand } from "../cache/redis-client.ts";
import { isRedisTimeout } from "../cache/redis-timeout.ts";
import { pooledRandomBytes } from "../random.ts";
import { withTimeout } from "../timeout.ts";
import { LocalRateLimiter } from "./local-limiter.ts";
import type { PolicyResult, RateCheck, RateDecision } from "./policies.ts";
import { RedisRateLimiter } from "./redis-limiter.ts";

export interface RateLimiterOptions {
  /** The Redis client to use now, or null when Redis is not configured. Asked on every check. */
  redis: () => Redis | null;
  /** Bound on the Redis round trip (the client's command timeout); past it the local limiter decides. */
  timeoutMs: number;
  /** How long a check may wait for a connection that is still being made (default: timeoutMs). */
  readyWaitMs?: number;
  keyPrefix?: string;
  local?: LocalRateLimiter;
  /** After a Redis failure, how long to use only the local limiter before trying Redis again. */
  retryRedisAfterMs?: number;
  /** Called once each time the limiter falls back from Redis to the local limiter. Never gets a key. */
  onFallback?: (err: unknown) => void;
  now?: () => number;
}

class RedisTimeout extends Error {
  override name = "RedisTimeout";
}

/**
 * Checks in a row that got no answer down a connection that is up before it is replaced: one that stopped answering
 * without closing (a half-open socket after a network fault) would otherwise serve every check by timeout until the
 * kernel gives up, ≈ 15 minutes. Not after one, which a merely slow Redis would turn into a reconnect a second. The
 * cache's recovery does the same for the functions that have one; this is the only one route-not-found has.
 */
export const TIMEOUTS_BEFORE_RECONNECT = 3;

/**
 * Redis first (shared across every Lambda instance); when Redis is absent, down, not yet connected or
 * slower than the timeout, this process's in-memory limiter. A Redis failure never fails the request;
 * after one, Redis is left alone for a second so a stalled server costs at most one timeout per second.
 */
export class RateLimiter {
  readonly #opts: RateLimiterOptions;
  readonly #local: LocalRateLimiter;
  readonly #now: () => number;
  #redisLimiter: { client: Redis; limiter: RedisRateLimiter } | undefined;
  #skipRedisUntil = 0;
  #timeoutsInARow = 0;

  constructor(opts: RateLimiterOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#local = opts.local ?? new LocalRateLimiter({ now: this.#now });
  }

  /**
   * `alsoRun`: Redis reads the request makes next, sent in the limiter's round trip when it goes to Redis (their
   * replies are `got` in the decision); absent when the local limiter decided or a read failed.
   */
  async check(
    checks: readonly RateCheck[],
    alsoRun?: readonly RedisCommand[],
  ): Promise<RateDecision & { got?: unknown[] }> {
    if (checks.length === 0) return { allowed: true, results: [], retryAfterSeconds: 0, source: "none" };
    const shared = await this.#tryRedis(checks, alsoRun);
    if (shared) return { ...decide(shared.results, "redis"), got: shared.got };
    return decide(this.#local.check(checks), "local");
  }

  async #tryRedis(
    checks: readonly RateCheck[],
    alsoRun: readonly RedisCommand[] | undefined,
  ): Promise<{ results: PolicyResult[]; got?: unknown[] } | null> {
    const client = this.#opts.redis();
    if (!client || this.#now() < this.#skipRedisUntil) return null;
    if (this.#redisLimiter?.client !== client) {
      this.#redisLimiter = {
        client,
        limiter: new RedisRateLimiter(client, { keyPrefix: this.#opts.keyPrefix }),
      };
    }
    const { limiter } = this.#redisLimiter;
    try {
      const timeoutMs = this.#opts.timeoutMs;
      if (client.status !== "ready") await waitReady(client, this.#opts.readyWaitMs ?? timeoutMs);
      const work = limiter.checkAndGet(checks, pooledRandomBytes(12).toString("base64url"), alsoRun);
      const got = await withTimeout(work, timeoutMs, () => new RedisTimeout(`no answer in ${timeoutMs} ms`));
      this.#timeoutsInARow = 0;
      return got;
    } catch (err) {
      this.#skipRedisUntil = this.#now() + (this.#opts.retryRedisAfterMs ?? 1000);
      this.#unanswered(client, err);
      this.#opts.onFallback?.(err);
      return null;
    }
  }

  /** Counts a check that a ready connection did not answer in time; replaces that connection at the limit. */
  #unanswered(client: Redis, err: unknown): void {
    if (!(err instanceof RedisTimeout || isRedisTimeout(err)) || client.status !== "ready") {
      this.#timeoutsInARow = 0;
      return;
    }
    if (++this.#timeoutsInARow < TIMEOUTS_BEFORE_RECONNECT) return;
    this.#timeoutsInARow = 0;
    client.disconnect(true);
  }
}

/** Waits at most timeoutMs for the client to become ready (a cold start's first connection). */
async function waitReady(client: Redis, timeoutMs: number): Promise<void> {
  const status = client.status;
  if (status === "end" || status === "close") throw new Error(`redis connection ${status}`);
  // A lazy client not connected yet (one whose credentials are read first, and that read failed): a command would
  // start its connection, as ioredis does for one in "wait", but this only waits for one.
  if (status === "wait") client.connect().catch(() => {});
  await new Promise<void>((resolve, reject) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      client.off("ready", onReady);
      reject(new RedisTimeout(`redis not ready (${status}) after ${timeoutMs} ms`));
    }, timeoutMs);
    client.once("ready", onReady);
  });
}

function decide(results: PolicyResult[], source: "redis" | "local"): RateDecision {
  const denied = results.filter((r) => !r.allowed);
  return {
    allowed: denied.length === 0,
    results,
    retryAfterSeconds:
      denied.length === 0 ? 0 : Math.max(1, ...denied.map((r) => Math.ceil(r.resetMs / 1000))),
    source,
  };
}
