import type { PolicyResult, RateCheck } from "./policies.ts";

export interface LocalLimiterOptions {
  /** Most partitions kept (memory bound); past it the least recently used is dropped. */
  maxKeys?: number;
  /** Every this many checks, partitions whose whole log has expired are dropped. */
  sweepEvery?: number;
  /** Milliseconds; injectable for tests. */
  now?: () => number;
}

/**
 * Sliding-window log, in this process's memory: the same algorithm as the Redis script, used when Redis
 * is not configured, down or slow. Each Lambda instance then enforces the limits on its own, so the
 * bound becomes limit × instances instead of limit, but it is still a bound.
 *
 * A request is admitted only when every policy admits it, and then counts against every policy; a denied
 * request counts against none (so hammering does not extend the wait).
 */
export class LocalRateLimiter {
  readonly #logs = new Map<string, number[]>();
  readonly #maxKeys: number;
  readonly #sweepEvery: number;
  readonly #now: () => number;
  #longestWindowMs = 0;
  #checksSinceSweep = 0;

  constructor(opts: LocalLimiterOptions = {}) {
    this.#maxKeys = opts.maxKeys ?? 10_000;
    this.#sweepEvery = opts.sweepEvery ?? 1000;
    this.#now = opts.now ?? Date.now;
  }

  /** Partitions currently held (for tests and the memory bound). */
  get size(): number {
    return this.#logs.size;
  }

  check(checks: readonly RateCheck[]): PolicyResult[] {
    const now = this.#now();
    if (++this.#checksSinceSweep >= this.#sweepEvery) this.#sweep(now);
    const state = checks.map((c) => {
      const id = `${c.policy.name}\u0000${c.key}`;
      const windowMs = c.policy.windowSeconds * 1000;
      this.#longestWindowMs = Math.max(this.#longestWindowMs, windowMs);
      const log = this.#logs.get(id) ?? [];
      // timestamps are appended in order, so the expired ones are a prefix
      let expired = 0;
      while (expired < log.length && (log[expired] as number) <= now - windowMs) expired++;
      if (expired) log.splice(0, expired);
      return { c, id, windowMs, log };
    });
    const admitted = state.every(({ c, log }) => log.length < c.policy.limit);
    return state.map(({ c, id, windowMs, log }) => {
      const { limit } = c.policy;
      if (admitted) {
        log.push(now);
        this.#store(id, log);
        return {
          policy: c.policy,
          allowed: true,
          remaining: limit - log.length,
          resetMs: (log[0] as number) + windowMs - now,
        };
      }
      if (log.length > 0) this.#store(id, log);
      else this.#logs.delete(id);
      if (log.length < limit) {
        return {
          policy: c.policy,
          allowed: true,
          remaining: limit - log.length,
          resetMs: log.length ? (log[0] as number) + windowMs - now : windowMs,
        };
      }
      // the unit that frees up first is the one whose expiry brings the count below the limit
      const freeing = log[log.length - limit] as number;
      return { policy: c.policy, allowed: false, remaining: 0, resetMs: freeing + windowMs - now };
    });
  }

  /** Drops the partitions nothing in any window still counts: memory follows recent traffic. */
  #sweep(now: number): void {
    this.#checksSinceSweep = 0;
    for (const [id, log] of this.#logs) {
      if (log.length === 0 || (log[log.length - 1] as number) <= now - this.#longestWindowMs)
        this.#logs.delete(id);
    }
  }

  #store(id: string, log: number[]): void {
    // re-insert, so the Map's order is least recently used first; past the bound, drop the LRU partition
    this.#logs.delete(id);
    if (this.#logs.size >= this.#maxKeys) {
      const lru = this.#logs.keys().next();
      if (!lru.done) this.#logs.delete(lru.value);
    }
    this.#logs.set(id, log);
  }
}
