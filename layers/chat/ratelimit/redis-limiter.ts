import type { Redis } from "ioredis";
import type { RedisCommand } from "../cache/redis-client.ts";
import type { PolicyResult, RateCheck } from "./policies.ts";

/**
 * Sliding-window log for one partition, atomically: drop the entries older than the window, count, and
 * add this request (a unique member scored with Redis's own clock, so Lambdas' clocks do not matter) only
 * if the count is below the limit. Returns {admitted, remaining, reset ms}.
 * KEYS[1] the partition's sorted set; ARGV limit, window ms, member.
 */
export const SLIDING_WINDOW_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {1, limit - count - 1, tonumber(oldest[2]) + window - now}
end
local freeing = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
return {0, 0, tonumber(freeing[2]) + window - now}`;

export class RedisLimiterError extends Error {
  override name = "RedisLimiterError";
}

/**
 * The shared limiter. Every policy's partition is its own key (no cross-slot script, so it also works on
 * a cluster / ElastiCache Serverless); all of them go in one pipeline: one round trip.
 */
export class RedisRateLimiter {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, opts: { keyPrefix?: string } = {}) {
    this.#redis = redis;
    this.#prefix = opts.keyPrefix ?? "rl:";
    // EVALSHA (ioredis falls back to EVAL once per connection on NOSCRIPT): the script text is not resent per request
    redis.defineCommand("chatSlidingWindow", { numberOfKeys: 1, lua: SLIDING_WINDOW_LUA });
  }

  key(check: RateCheck): string {
    return `${this.#prefix}${check.policy.name}:${check.key}`;
  }

  /** `member` must be unique per request: it is this request's entry in every partition it counts in. */
  async check(checks: readonly RateCheck[], member: string): Promise<PolicyResult[]> {
    return (await this.checkAndGet(checks, member)).results;
  }

  /**
   * check(), plus `alsoRun`: read commands sent in the same round trip for the request's next step (the session's
   * cache entries), so admitting a request and reading its session cost one round trip, not two. `got` holds
   * their replies in order, or is absent if one of them failed.
   */
  async checkAndGet(
    checks: readonly RateCheck[],
    member: string,
    alsoRun: readonly RedisCommand[] = [],
  ): Promise<{ results: PolicyResult[]; got?: unknown[] }> {
    const pipeline = this.#redis.pipeline() as ReturnType<Redis["pipeline"]> & {
      chatSlidingWindow(key: string, limit: number, windowMs: number, member: string): unknown;
    };
    for (const c of checks) {
      pipeline.chatSlidingWindow(this.key(c), c.policy.limit, c.policy.windowSeconds * 1000, member);
    }
    for (const [name, ...args] of alsoRun) pipeline.call(name, ...args);
    const replies = await pipeline.exec();
    if (!replies || replies.length !== checks.length + alsoRun.length) {
      throw new RedisLimiterError("pipeline aborted");
    }
    const extra = replies.slice(checks.length);
    const got =
      extra.length > 0 && extra.every(([err]) => !err) ? extra.map(([, reply]) => reply) : undefined;
    const results = checks.map((c, i): PolicyResult => {
      const [err, reply] = replies[i] as [Error | null, unknown];
      if (err) throw err;
      const [admitted, remaining, resetMs] = reply as [number, number, number];
      return {
        policy: c.policy,
        allowed: admitted === 1,
        remaining: Math.max(0, remaining),
        resetMs: Math.max(0, resetMs),
      };
    });
    // Each key decided on its own; if any policy denied, the request is refused and must not count
    // against the policies that admitted it: take its entry back out of those.
    if (results.some((r) => !r.allowed)) {
      const admitted = checks.filter((_, i) => results[i]?.allowed);
      if (admitted.length > 0) {
        const undo = this.#redis.pipeline();
        for (const c of admitted) undo.zrem(this.key(c), member);
        await undo.exec().catch(() => {});
        return { results: results.map((r) => (r.allowed ? { ...r, remaining: r.remaining + 1 } : r)) };
      }
    }
    return { results, got };
  }
}
