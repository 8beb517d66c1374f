import { createHash } from "node:crypto";
import fc from "fast-check";
import type { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { hashToken, newSessionToken } from "../../layers/chat/chat/tokens.ts";
import { rateLimitHeaders } from "../../layers/chat/ratelimit/headers.ts";
import { LocalRateLimiter } from "../../layers/chat/ratelimit/local-limiter.ts";
import {
  expandIPv6,
  IP_POLICY,
  ipPartition,
  type PolicyResult,
  policiesFromLimits,
  type RateCheck,
  type RatePolicy,
  TOKEN_POLICY,
  tokenPartition,
} from "../../layers/chat/ratelimit/policies.ts";
import { RateLimiter } from "../../layers/chat/ratelimit/rate-limiter.ts";

const policy = (limit: number, windowSeconds: number, name = "p"): RatePolicy => ({
  name,
  limit,
  windowSeconds,
});

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, set: (v: number) => (t = v), advance: (ms: number) => (t += ms) };
}

describe("LocalRateLimiter: sliding-window log", () => {
  it("admits `limit` requests in any window and refuses the next, until the oldest leaves the window", () => {
    const c = clock(0);
    const lim = new LocalRateLimiter({ now: c.now });
    const p = policy(3, 10);
    const at = (t: number) => {
      c.set(t);
      return lim.check([{ policy: p, key: "k" }])[0] as PolicyResult;
    };
    expect(at(0)).toEqual({ policy: p, allowed: true, remaining: 2, resetMs: 10_000 });
    expect(at(4000)).toMatchObject({ allowed: true, remaining: 1, resetMs: 6000 });
    expect(at(8000)).toMatchObject({ allowed: true, remaining: 0, resetMs: 2000 });
    // a fixed window would have reset nothing; the sliding window frees t=0's unit at t=10 000
    expect(at(9000)).toMatchObject({ allowed: false, remaining: 0, resetMs: 1000 });
    expect(at(9999)).toMatchObject({ allowed: false, resetMs: 1 });
    expect(at(10_000)).toMatchObject({ allowed: true, remaining: 0, resetMs: 4000 });
    expect(at(10_001)).toMatchObject({ allowed: false, resetMs: 3999 });
  });

  it("does not count refused requests: hammering does not extend the wait", () => {
    const c = clock(0);
    const lim = new LocalRateLimiter({ now: c.now });
    const p = policy(2, 1);
    lim.check([{ policy: p, key: "k" }]);
    lim.check([{ policy: p, key: "k" }]);
    for (let t = 1; t < 1000; t += 7) {
      c.set(t);
      expect(lim.check([{ policy: p, key: "k" }])[0]?.allowed).toBe(false);
    }
    c.set(1000);
    expect(lim.check([{ policy: p, key: "k" }])[0]?.allowed).toBe(true);
  });

  it("keeps partitions and policies apart", () => {
    const c = clock();
    const lim = new LocalRateLimiter({ now: c.now });
    const p = policy(1, 60);
    expect(lim.check([{ policy: p, key: "a" }])[0]?.allowed).toBe(true);
    expect(lim.check([{ policy: p, key: "a" }])[0]?.allowed).toBe(false);
    expect(lim.check([{ policy: p, key: "b" }])[0]?.allowed).toBe(true);
    expect(lim.check([{ policy: policy(1, 60, "other"), key: "a" }])[0]?.allowed).toBe(true);
  });

  it("admits a request only if every policy does, and then counts it against every policy", () => {
    const c = clock();
    const lim = new LocalRateLimiter({ now: c.now });
    const token = policy(2, 60, TOKEN_POLICY);
    const ip = policy(5, 60, IP_POLICY);
    const both = (t: string): RateCheck[] => [
      { policy: token, key: t },
      { policy: ip, key: "10.0.0.1" },
    ];
    expect(lim.check(both("t1")).map((r) => r.allowed)).toEqual([true, true]);
    expect(lim.check(both("t1")).map((r) => r.allowed)).toEqual([true, true]);
    // refused by the token policy: the address's count stays at 2
    const refused = lim.check(both("t1"));
    expect(refused.map((r) => r.allowed)).toEqual([false, true]);
    expect(refused[1]?.remaining).toBe(3);
    for (let i = 0; i < 10; i++) lim.check(both("t1"));
    // 3 more tokens: the address still has its 3 units
    expect(lim.check(both("t2"))[1]).toMatchObject({ allowed: true, remaining: 2 });
    expect(lim.check(both("t3"))[1]).toMatchObject({ allowed: true, remaining: 1 });
    expect(lim.check(both("t4"))[1]).toMatchObject({ allowed: true, remaining: 0 });
    expect(lim.check(both("t5")).map((r) => r.allowed)).toEqual([true, false]);
  });

  it("keeps at most maxKeys partitions, dropping the least recently used", () => {
    const c = clock();
    const lim = new LocalRateLimiter({ now: c.now, maxKeys: 100 });
    const p = policy(1, 60);
    lim.check([{ policy: p, key: "hot" }]);
    for (let i = 0; i < 1000; i++) {
      lim.check([{ policy: p, key: `k${i}` }]);
      if (i % 10 === 0) lim.check([{ policy: p, key: "hot" }]); // touched: stays
    }
    expect(lim.size).toBeLessThanOrEqual(100);
    expect(lim.check([{ policy: p, key: "hot" }])[0]?.allowed).toBe(false);
  });

  it("drops partitions whose log has wholly expired, so memory follows recent traffic", () => {
    const c = clock(0);
    const lim = new LocalRateLimiter({ now: c.now, sweepEvery: 10 });
    const p = policy(5, 1);
    for (let i = 0; i < 50; i++) lim.check([{ policy: p, key: `old${i}` }]);
    expect(lim.size).toBe(50);
    c.advance(1000); // every log above has expired
    for (let i = 0; i < 10; i++) lim.check([{ policy: p, key: "new" }]);
    expect(lim.size).toBe(1);
  });

  it("sweeps on exactly the sweepEvery-th check, dropping a log whose last entry is exactly a window old", () => {
    const c = clock(0);
    const lim = new LocalRateLimiter({ now: c.now, sweepEvery: 3 });
    const p = policy(5, 1);
    lim.check([{ policy: p, key: "old" }]); // check 1
    c.set(1000); // "old"'s only entry is now exactly one window old: it no longer counts
    lim.check([{ policy: p, key: "new" }]); // check 2: no sweep yet
    expect(lim.size).toBe(2);
    lim.check([{ policy: p, key: "new" }]); // check 3: the sweep
    expect(lim.size).toBe(1);
  });

  it("drops a partition whose log a refused request leaves empty, and stores none for a new one", () => {
    const c = clock(0);
    const lim = new LocalRateLimiter({ now: c.now, sweepEvery: 1e9 }); // no sweep: only check() drops
    const tok = policy(1, 60, TOKEN_POLICY);
    const ip = policy(5, 1, IP_POLICY);
    const checks = (addr: string): RateCheck[] => [
      { policy: tok, key: "t" },
      { policy: ip, key: addr },
    ];
    lim.check(checks("10.0.0.1"));
    expect(lim.size).toBe(2);
    c.set(1000); // the address's one entry has expired; the token's has not
    const refused = lim.check(checks("10.0.0.1"));
    expect(refused.map((r) => r.allowed)).toEqual([false, true]);
    // an empty log: the whole quota, and a full window until anything changes
    expect(refused[1]).toMatchObject({ remaining: 5, resetMs: 1000 });
    expect(lim.size).toBe(1);
    lim.check(checks("10.0.0.2")); // refused by the token: the new address is not kept either
    expect(lim.size).toBe(1);
  });

  it("after a limit is lowered, waits for the entry whose expiry brings the count below the new limit", () => {
    const c = clock(0);
    const lim = new LocalRateLimiter({ now: c.now });
    for (const t of [0, 1000, 2000]) {
      c.set(t);
      expect(lim.check([{ policy: policy(3, 10), key: "k" }])[0]?.allowed).toBe(true);
    }
    c.set(3000);
    // limit 2 now, 3 entries: t=0's expiry leaves 2 (still full), t=1000's leaves 1, at 11 000
    expect(lim.check([{ policy: policy(2, 10), key: "k" }])[0]).toMatchObject({
      allowed: false,
      remaining: 0,
      resetMs: 8000,
    });
  });

  it("matches a naive reference model on any request schedule (property)", () => {
    // reference: admitted iff fewer than `limit` admitted requests in (t - w, t]
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3000 }), fc.constantFrom("a", "b")), { maxLength: 80 }),
        (limit, windowSeconds, steps) => {
          const c = clock(0);
          const lim = new LocalRateLimiter({ now: c.now });
          const p = policy(limit, windowSeconds);
          const w = windowSeconds * 1000;
          const admitted: Record<string, number[]> = { a: [], b: [] };
          let t = 0;
          for (const [dt, key] of steps) {
            t += dt;
            c.set(t);
            const inWindow = (admitted[key] as number[]).filter((x) => x > t - w);
            const expected = inWindow.length < limit;
            const [r] = lim.check([{ policy: p, key }]);
            expect(r?.allowed).toBe(expected);
            if (expected) (admitted[key] as number[]).push(t);
            const after = (admitted[key] as number[]).filter((x) => x > t - w);
            expect(r?.remaining).toBe(Math.max(0, limit - after.length));
            // the bound itself: never more than `limit` admitted in any window
            expect(after.length).toBeLessThanOrEqual(limit);
            if (!expected) {
              // retry exactly when the unit that brings the count below the limit frees up
              const freeing = after[after.length - limit] as number;
              expect(r?.resetMs).toBe(freeing + w - t);
              expect(r?.resetMs).toBeGreaterThan(0);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("partition keys", () => {
  it("hashes the token: deterministic, 128 bits, never the token nor the token_hash Postgres stores", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.constant(newSessionToken())), (token) => {
        const k = tokenPartition(token);
        expect(k).toMatch(/^[A-Za-z0-9_-]{22}$/);
        expect(tokenPartition(token)).toBe(k);
        if (token.length >= 4) expect(k).not.toContain(token);
        expect(hashToken(token)).not.toContain(k);
        expect(createHash("sha256").update(token).digest("base64url")).not.toContain(k);
      }),
    );
    const t = newSessionToken();
    expect(tokenPartition(t)).not.toBe(tokenPartition(`${t}x`));
  });

  it("keys IPv4 as is and IPv6 by its /64; IPv4-mapped IPv6 is IPv4; junk is null", () => {
    expect(ipPartition("203.0.113.9")).toBe("203.0.113.9");
    expect(ipPartition("::ffff:203.0.113.9")).toBe("203.0.113.9");
    expect(ipPartition("::ffff:cb00:7109")).toBe("203.0.113.9");
    expect(ipPartition("2001:db8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
    expect(ipPartition("2001:db8:1:2::99")).toBe("2001:db8:1:2::/64");
    expect(ipPartition("2001:DB8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(ipPartition("2001:db8::")).toBe("2001:db8:0:0::/64");
    expect(ipPartition("::1")).toBe("0:0:0:0::/64");
    // ffff in group 5 is IPv4-mapped only when groups 0-4 are all zero
    expect(ipPartition("::1:ffff:102:304")).toBe("0:0:0:0::/64");
    expect(ipPartition("1::ffff:102:304")).toBe("1:0:0:0::/64");
    expect(ipPartition("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    for (const junk of [undefined, "", "unknown", "1.2.3", "1.2.3.256", "2001:db8::1::2", "::g", "a b"]) {
      expect(ipPartition(junk)).toBeNull();
    }
  });

  it("expands any IPv6 spelling back to its eight groups (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 8 }),
        (groups, from, len) => {
          const hex = groups.map((g) => g.toString(16));
          // compress a run of zeros with "::" where there is one
          const run = Math.min(len, 8 - from);
          const zeroed = groups.map((g, i) => (i >= from && i < from + run ? 0 : g));
          const spelled =
            run >= 1
              ? `${zeroed
                  .slice(0, from)
                  .map((g) => g.toString(16))
                  .join(":")}::${zeroed
                  .slice(from + run)
                  .map((g) => g.toString(16))
                  .join(":")}`
              : hex.join(":");
          expect(expandIPv6(spelled)).toEqual(run >= 1 ? zeroed : groups);
        },
      ),
    );
  });

  it("turns config into policies; 0 turns a policy off", () => {
    expect(
      policiesFromLimits({
        RATE_LIMIT_PER_TOKEN: 120,
        RATE_LIMIT_PER_IP: 600,
        RATE_LIMIT_WINDOW_SECONDS: 60,
      }),
    ).toEqual({
      token: { name: "per-token", limit: 120, windowSeconds: 60 },
      ip: { name: "per-ip", limit: 600, windowSeconds: 60 },
    });
    expect(
      policiesFromLimits({ RATE_LIMIT_PER_TOKEN: 0, RATE_LIMIT_PER_IP: 0, RATE_LIMIT_WINDOW_SECONDS: 60 }),
    ).toEqual({
      token: null,
      ip: null,
    });
  });
});

describe("RateLimit and RateLimit-Policy fields (draft-ietf-httpapi-ratelimit-headers)", () => {
  const tok = policy(120, 60, TOKEN_POLICY);
  const ip = policy(600, 60, IP_POLICY);

  it("writes sf-lists of quoted policy names with integer parameters", () => {
    expect(
      rateLimitHeaders([
        { policy: tok, allowed: false, remaining: 0, resetMs: 16_200 },
        { policy: ip, allowed: true, remaining: 583, resetMs: 60_000 },
      ]),
    ).toEqual({
      "ratelimit-policy": '"per-token";q=120;w=60, "per-ip";q=600;w=60',
      ratelimit: '"per-token";r=0;t=17, "per-ip";r=583;t=60',
    });
    expect(rateLimitHeaders([])).toEqual({});
  });

  it("never sends t=0 on a refusal (the client would retry at once), though an admitted answer may", () => {
    expect(rateLimitHeaders([{ policy: tok, allowed: false, remaining: 0, resetMs: 0 }]).ratelimit).toBe(
      '"per-token";r=0;t=1',
    );
    expect(rateLimitHeaders([{ policy: tok, allowed: true, remaining: 3, resetMs: 0 }]).ratelimit).toBe(
      '"per-token";r=3;t=0',
    );
  });

  it("always yields parseable fields with non-negative integers, and t ≥ 1 on a refusal (property)", () => {
    const item = /^"[a-z-]+";r=(\d+);t=(\d+)$/;
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            allowed: fc.boolean(),
            remaining: fc.nat(1000),
            resetMs: fc.nat(600_000),
            p: fc.constantFrom(tok, ip),
          }),
          { minLength: 1, maxLength: 2 },
        ),
        (rs) => {
          const h = rateLimitHeaders(rs.map(({ p, ...r }) => ({ policy: p, ...r })));
          const items = (h.ratelimit as string).split(", ");
          expect(items).toHaveLength(rs.length);
          items.forEach((it, i) => {
            const m = it.match(item);
            expect(m).not.toBeNull();
            if (!rs[i]?.allowed) expect(Number(m?.[2])).toBeGreaterThanOrEqual(1);
          });
          for (const p of (h["ratelimit-policy"] as string).split(", "))
            expect(p).toMatch(/^"[a-z-]+";q=\d+;w=\d+$/);
        },
      ),
    );
  });
});

/** A Redis stand-in whose pipeline answers as told, for the fallback logic. */
function fakeRedis(initially: "hang" | "fail" | "ok", status = "ready") {
  let behaviour = initially;
  const calls = { pipelines: 0, disconnects: 0 };
  const client = {
    status,
    once: () => {},
    off: () => {},
    defineCommand: () => {},
    disconnect: () => {
      calls.disconnects++;
    },
    pipeline() {
      calls.pipelines++;
      const cmds: unknown[] = [];
      const p = {
        chatSlidingWindow: (...a: unknown[]) => {
          cmds.push(a);
          return p;
        },
        zrem: () => p,
        exec: () =>
          behaviour === "hang"
            ? new Promise(() => {})
            : behaviour === "fail"
              ? Promise.reject(Object.assign(new Error("ECONNREFUSED"), { code: "ECONNREFUSED" }))
              : Promise.resolve(cmds.map(() => [null, [1, 9, 60_000]])),
      };
      return p;
    },
  };
  const answer = (b: typeof behaviour) => {
    behaviour = b;
  };
  return { client: client as unknown as Redis, calls, answer };
}

describe("RateLimiter: Redis first, this process's memory when Redis is absent, down or slow", () => {
  const checks: RateCheck[] = [{ policy: policy(2, 60), key: "k" }];

  it("uses the local limiter without Redis, and says so", async () => {
    const lim = new RateLimiter({ redis: () => null, timeoutMs: 50 });
    expect(await lim.check(checks)).toMatchObject({ allowed: true, source: "local" });
    expect(await lim.check(checks)).toMatchObject({ allowed: true, source: "local" });
    expect(await lim.check(checks)).toMatchObject({ allowed: false, source: "local", retryAfterSeconds: 60 });
    expect(await lim.check([])).toEqual({ allowed: true, results: [], retryAfterSeconds: 0, source: "none" });
  });

  it("uses Redis's answer when it comes", async () => {
    const { client } = fakeRedis("ok");
    const lim = new RateLimiter({ redis: () => client, timeoutMs: 50 });
    expect(await lim.check(checks)).toMatchObject({
      allowed: true,
      source: "redis",
      results: [{ remaining: 9 }],
    });
  });

  it("bounds a stalled Redis by the timeout, falls back, and leaves Redis alone for a while", async () => {
    const c = clock(0);
    const { client, calls } = fakeRedis("hang");
    const onFallback = vi.fn();
    const lim = new RateLimiter({
      redis: () => client,
      timeoutMs: 40,
      onFallback,
      now: c.now,
      retryRedisAfterMs: 1000,
    });
    // answered when its 40 ms run out, not when Redis does (never): timed on fake timers, not the wall clock
    vi.useFakeTimers();
    let first: Awaited<ReturnType<typeof lim.check>> | undefined;
    try {
      const checking = lim.check(checks).then((r) => {
        first = r;
      });
      await vi.advanceTimersByTimeAsync(39);
      expect(first).toBeUndefined();
      await vi.advanceTimersByTimeAsync(1);
      await checking;
    } finally {
      vi.useRealTimers();
    }
    expect(first).toMatchObject({ allowed: true, source: "local" });
    expect(onFallback).toHaveBeenCalledTimes(1);
    expect(onFallback.mock.calls[0]?.[0]).toMatchObject({ name: "RedisTimeout" });
    // within the retry interval: straight to the local limiter, which still enforces the bound
    c.advance(500);
    expect(await lim.check(checks)).toMatchObject({ allowed: true, source: "local" });
    expect(await lim.check(checks)).toMatchObject({ allowed: false, source: "local" });
    expect(calls.pipelines).toBe(1);
    c.advance(600);
    await lim.check(checks);
    expect(calls.pipelines).toBe(2);
  });

  it("falls back at once when Redis refuses, or is not connected within the wait", async () => {
    const failing = fakeRedis("fail");
    const onFallback = vi.fn();
    const lim = new RateLimiter({ redis: () => failing.client, timeoutMs: 50, onFallback });
    expect(await lim.check(checks)).toMatchObject({ allowed: true, source: "local" });
    expect(onFallback.mock.calls[0]?.[0]).toMatchObject({ code: "ECONNREFUSED" });

    const connecting = fakeRedis("ok", "connecting");
    const lim2 = new RateLimiter({ redis: () => connecting.client, timeoutMs: 50, readyWaitMs: 30 });
    vi.useFakeTimers();
    let second: Awaited<ReturnType<typeof lim2.check>> | undefined;
    try {
      const checking = lim2.check(checks).then((r) => {
        second = r;
      });
      await vi.advanceTimersByTimeAsync(30); // the wait for a connection, not the 50 ms command timeout
      await checking;
    } finally {
      vi.useRealTimers();
    }
    expect(second).toMatchObject({ source: "local" });
    expect(connecting.calls.pipelines).toBe(0);

    const ended = fakeRedis("ok", "end");
    expect(await new RateLimiter({ redis: () => ended.client, timeoutMs: 50 }).check(checks)).toMatchObject({
      source: "local",
    });
  });

  it("retries after at least a second, rounding up, and never less than the refused policy's wait", async () => {
    const c = clock(0);
    const lim = new RateLimiter({ redis: () => null, timeoutMs: 50, now: c.now });
    const p = [{ policy: policy(1, 3), key: "k" }];
    await lim.check(p);
    c.advance(1600);
    // 1.4 s left: waiting 1 s would be refused again
    expect((await lim.check(p)).retryAfterSeconds).toBe(2);
    c.advance(900);
    expect((await lim.check(p)).retryAfterSeconds).toBe(1);
    c.advance(-2400);
    expect((await lim.check(p)).retryAfterSeconds).toBe(3);
  });
});

describe("RateLimiter: going back to Redis, and to the right client", () => {
  const checks: RateCheck[] = [{ policy: policy(100, 60), key: "k" }];

  it("leaves a failed Redis alone for 1000 ms by default, and not a millisecond longer", async () => {
    const c = clock(0);
    const { client, calls } = fakeRedis("fail");
    const lim = new RateLimiter({ redis: () => client, timeoutMs: 50, now: c.now });
    const pipelinesAt = async (t: number) => {
      c.set(t);
      await lim.check(checks);
      return calls.pipelines;
    };
    expect([await pipelinesAt(0), await pipelinesAt(999), await pipelinesAt(1000)]).toEqual([1, 1, 2]);
  });

  it("asks the client it is given now: a replaced Redis client gets the next check", async () => {
    const a = fakeRedis("ok");
    const b = fakeRedis("ok");
    let current = a.client;
    const lim = new RateLimiter({ redis: () => current, timeoutMs: 50 });
    expect((await lim.check(checks)).source).toBe("redis");
    current = b.client; // e.g. getRedis() after the old client was closed
    expect((await lim.check(checks)).source).toBe("redis");
    expect([a.calls.pipelines, b.calls.pipelines]).toEqual([1, 1]);
  });
});

describe("RateLimiter: replacing a connection that stops answering", () => {
  const checks: RateCheck[] = [{ policy: policy(100, 60), key: "k" }];
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());
  /** One check, run past its 40 ms bound (a hanging Redis answers by timeout). */
  const checkOnce = async (lim: RateLimiter) => {
    const d = lim.check(checks);
    await vi.advanceTimersByTimeAsync(40);
    return d;
  };
  // retryRedisAfterMs 0: every check goes to Redis, so each hang counts
  const limiter = (client: Redis) =>
    new RateLimiter({ redis: () => client, timeoutMs: 40, readyWaitMs: 30, retryRedisAfterMs: 0 });

  it("counts only timeouts in a row: an answer in between starts the count again", async () => {
    const r = fakeRedis("hang");
    const lim = limiter(r.client);
    await checkOnce(lim);
    await checkOnce(lim);
    r.answer("ok");
    expect((await checkOnce(lim)).source).toBe("redis");
    r.answer("hang");
    await checkOnce(lim);
    await checkOnce(lim);
    expect(r.calls.disconnects).toBe(0);
    await checkOnce(lim); // the third in a row
    expect(r.calls.disconnects).toBe(1);
  });

  it("starts counting afresh after a reconnect: six timeouts in a row reconnect twice", async () => {
    const r = fakeRedis("hang");
    const lim = limiter(r.client);
    for (let i = 0; i < 6; i++) expect((await checkOnce(lim)).source).toBe("local");
    expect(r.calls.disconnects).toBe(2);
  });

  it("does not replace a connection still being made: waiting for it is not a silent socket", async () => {
    const r = fakeRedis("ok", "connecting");
    const lim = limiter(r.client);
    for (let i = 0; i < 6; i++) expect((await checkOnce(lim)).source).toBe("local");
    expect(r.calls).toEqual({ pipelines: 0, disconnects: 0 });
  });
});
