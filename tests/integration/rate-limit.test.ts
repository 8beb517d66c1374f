import { randomBytes, randomUUID } from "node:crypto";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { resetRateLimiter } from "../../functions/http/rate-limit.ts";
import { closeRedis } from "../../layers/chat/cache/redis-client.ts";
import { SessionCache } from "../../layers/chat/cache/session-cache.ts";
import { newSessionToken } from "../../layers/chat/chat/tokens.ts";
import { resetChatRuntime } from "../../layers/chat/chat-runtime.ts";
import { parseConfig, resetConfig } from "../../layers/chat/config.ts";
import { closePool } from "../../layers/chat/db/pool.ts";
import { LocalRateLimiter } from "../../layers/chat/ratelimit/local-limiter.ts";
import { type RateCheck, type RatePolicy, tokenPartition } from "../../layers/chat/ratelimit/policies.ts";
import { RateLimiter, TIMEOUTS_BEFORE_RECONNECT } from "../../layers/chat/ratelimit/rate-limiter.ts";
import { RedisRateLimiter, SLIDING_WINDOW_LUA } from "../../layers/chat/ratelimit/redis-limiter.ts";
import { rowCounts, SHARED_REDIS_URL, testRedis } from "../helpers/chat-fixture.ts";
import { call, type HttpLambda, httpEvent } from "../helpers/lambda-events.ts";
import { type PrivateRedis, startPrivateRedis } from "../helpers/private-redis.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";
import { startTcpProxy } from "../reliability/support/tcp-proxy.ts";

vi.hoisted(() => {
  process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
});

const cfg = parseConfig({});
/**
 * The outage tests' command and check timeout: the runtime's 50 ms would let a loaded machine's event-loop stall
 * (other test files, CI) read as a Redis timeout; what these tests check is that a timeout bounds the wait.
 */
const OUTAGE_TIMEOUT_MS = 250;
const outageCfg = { ...cfg, REDIS_COMMAND_TIMEOUT_MS: OUTAGE_TIMEOUT_MS };
const policy = (limit: number, windowSeconds: number, name = "p"): RatePolicy => ({
  name,
  limit,
  windowSeconds,
});
/** Every test its own keys on the shared Redis. */
const prefix = () => `rl-test:${randomUUID()}:`;
const member = () => randomBytes(12).toString("base64url");

async function keysUnder(redis: Redis, p: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${p}*`, "COUNT", 1000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== "0");
  return out;
}

describe("RedisRateLimiter on the shared Redis", () => {
  let redis: Redis;
  beforeAll(async () => {
    redis = testRedis(SHARED_REDIS_URL, { ...cfg, REDIS_COMMAND_TIMEOUT_MS: 2000 });
    if (redis.status !== "ready") await new Promise((r) => redis.once("ready", r));
  });
  afterAll(() => redis.disconnect());

  it("admits `limit` requests per window, then refuses with the wait until a unit frees up", async () => {
    const p = prefix();
    const lim = new RedisRateLimiter(redis, { keyPrefix: p });
    const check: RateCheck = { policy: policy(3, 60), key: "a" };
    const seen = [];
    for (let i = 0; i < 5; i++) seen.push((await lim.check([check], member()))[0]);
    expect(seen.map((r) => r?.allowed)).toEqual([true, true, true, false, false]);
    expect(seen.map((r) => r?.remaining)).toEqual([2, 1, 0, 0, 0]);
    expect(seen[0]?.resetMs).toBe(60_000);
    expect(seen[3]?.resetMs).toBeGreaterThan(58_000);
    expect(seen[3]?.resetMs).toBeLessThanOrEqual(60_000);
    // one sorted set per partition, holding only the admitted requests, expiring with the window
    const key = lim.key(check);
    expect(await redis.zcard(key)).toBe(3);
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
    // another partition is untouched
    expect((await lim.check([{ ...check, key: "b" }], member()))[0]).toMatchObject({
      allowed: true,
      remaining: 2,
    });
  });

  it("slides: a unit comes back when its request leaves the window", async () => {
    const lim = new RedisRateLimiter(redis, { keyPrefix: prefix() });
    const c: RateCheck = { policy: policy(2, 1), key: "s" };
    expect((await lim.check([c], member()))[0]?.allowed).toBe(true);
    await new Promise((r) => setTimeout(r, 400));
    const second = (await lim.check([c], member()))[0];
    expect(second?.allowed).toBe(true);
    // the partition regains a unit when the oldest entry leaves (≈ 600 ms), not the one just added (1000 ms)
    expect(second?.resetMs).toBeLessThanOrEqual(600 + 20);
    const refused = (await lim.check([c], member()))[0];
    expect(refused?.allowed).toBe(false);
    expect(refused?.resetMs).toBeLessThanOrEqual(600 + 20);
    await new Promise((r) => setTimeout(r, (refused?.resetMs ?? 0) + 30));
    // the first one has left; the second is still in the window
    expect((await lim.check([c], member()))[0]).toMatchObject({ allowed: true, remaining: 0 });
    expect((await lim.check([c], member()))[0]?.allowed).toBe(false);
  });

  it("scores an entry with Redis's clock, in milliseconds", async () => {
    const lim = new RedisRateLimiter(redis, { keyPrefix: prefix() });
    const c: RateCheck = { policy: policy(5, 60), key: "clock" };
    const ms = async () => {
      const [s, us] = await redis.time();
      return Number(s) * 1000 + Math.floor(Number(us) / 1000);
    };
    const m = member();
    const before = await ms();
    await lim.check([c], m);
    const after = await ms();
    const score = Number(await redis.zscore(lim.key(c), m));
    expect(score).toBeGreaterThanOrEqual(before);
    expect(score).toBeLessThanOrEqual(after);
  });

  it("expires an entry exactly one window old (the script on a pinned clock)", async () => {
    // Redis's clock replaced by ARGV[4] seconds, ARGV[5] microseconds: the boundary is one exact millisecond
    const pinned = SLIDING_WINDOW_LUA.replace("redis.call('TIME')", "{ARGV[4], ARGV[5]}");
    expect(pinned).not.toBe(SLIDING_WINDOW_LUA);
    const key = `${prefix()}pinned`;
    const at = (s: number, us: number) =>
      redis.eval(pinned, 1, key, 1, 1000, member(), s, us) as Promise<[number, number, number]>;
    expect(await at(100, 0)).toEqual([1, 0, 1000]); // t = 100 000 ms
    expect(await at(100, 999_000)).toEqual([0, 0, 1]); // 1 ms before it leaves
    expect(await at(101, 0)).toEqual([1, 0, 1000]); // t - window: gone
  });

  it("after a limit is lowered, waits for the entry whose expiry brings the count below the new limit", async () => {
    const lim = new RedisRateLimiter(redis, { keyPrefix: prefix() });
    const c: RateCheck = { policy: policy(2, 60), key: "lowered" };
    const [s, us] = await redis.time();
    const now = Number(s) * 1000 + Math.floor(Number(us) / 1000);
    // three entries (admitted under a limit of 3), 30, 20 and 10 s old
    await redis.zadd(lim.key(c), now - 30_000, "a", now - 20_000, "b", now - 10_000, "c");
    const [r] = await lim.check([c], member());
    expect(r?.allowed).toBe(false);
    // a's expiry (in 30 s) leaves 2, still the limit; b's leaves 1: in 40 s less this test's few ms
    expect(r?.resetMs).toBeGreaterThan(39_000);
    expect(r?.resetMs).toBeLessThanOrEqual(40_000);
  });

  it("returns the replies of the reads sent along as `got`, and none when one of them fails", async () => {
    const p = prefix();
    const lim = new RedisRateLimiter(redis, { keyPrefix: p });
    await redis.set(`${p}str`, "v", "EX", 60);
    await redis.hset(`${p}hash`, "f", "1");
    await redis.expire(`${p}hash`, 60);
    const c: RateCheck[] = [{ policy: policy(10, 60), key: "g" }];
    const ok = await lim.checkAndGet(c, member(), [
      ["get", `${p}str`],
      ["get", `${p}missing`],
    ]);
    expect(ok.got).toEqual(["v", null]);
    // GET on a hash is WRONGTYPE: a partial read is not handed on (the handler reads for itself)
    const partial = await lim.checkAndGet(c, member(), [
      ["get", `${p}str`],
      ["get", `${p}hash`],
    ]);
    expect(partial.results[0]?.allowed).toBe(true);
    expect(partial.got).toBeUndefined();
    // nothing sent along: nothing got (not an empty list)
    expect((await lim.checkAndGet(c, member())).got).toBeUndefined();
  });

  it("is atomic: of 60 concurrent requests over 4 connections exactly `limit` get through", async () => {
    const p = prefix();
    const clients = Array.from({ length: 4 }, () =>
      testRedis(SHARED_REDIS_URL, { ...cfg, REDIS_COMMAND_TIMEOUT_MS: 2000 }),
    );
    await Promise.all(
      clients.map((c) => (c.status === "ready" ? null : new Promise((r) => c.once("ready", r)))),
    );
    try {
      const c: RateCheck = { policy: policy(10, 60), key: "hot" };
      const results = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          new RedisRateLimiter(clients[i % 4] as Redis, { keyPrefix: p }).check([c], member()),
        ),
      );
      expect(results.filter(([r]) => r?.allowed)).toHaveLength(10);
      expect(await redis.zcard(`${p}p:hot`)).toBe(10);
    } finally {
      for (const c of clients) c.disconnect();
    }
  });

  it("takes a refused request back out of the policies that admitted it", async () => {
    const p = prefix();
    const lim = new RedisRateLimiter(redis, { keyPrefix: p });
    const token = policy(1, 60, "per-token");
    const ip = policy(5, 60, "per-ip");
    const checks = (t: string): RateCheck[] => [
      { policy: token, key: t },
      { policy: ip, key: "10.0.0.7" },
    ];
    expect((await lim.check(checks("t1"), member())).map((r) => r.allowed)).toEqual([true, true]);
    for (let i = 0; i < 5; i++) {
      const r = await lim.check(checks("t1"), member());
      expect(r.map((x) => x.allowed)).toEqual([false, true]);
      expect(r[1]?.remaining).toBe(4);
    }
    expect(await redis.zcard(`${p}per-ip:10.0.0.7`)).toBe(1);
  });

  it("never stores the token: keys hold a hash of it, members are random", async () => {
    const p = prefix();
    const lim = new RedisRateLimiter(redis, { keyPrefix: p });
    const token = newSessionToken();
    await lim.check([{ policy: policy(5, 60, "per-token"), key: tokenPartition(token) }], member());
    const keys = await keysUnder(redis, p);
    expect(keys).toEqual([`${p}per-token:${tokenPartition(token)}`]);
    const members = await redis.zrange(keys[0] as string, "0", "-1");
    expect(JSON.stringify([keys, members])).not.toContain(token);
    expect(JSON.stringify([keys, members])).not.toContain(token.slice(0, 12));
  });
});

describe("RateLimiter with a private Redis that goes away", () => {
  let priv: PrivateRedis;
  let client: Redis;
  beforeAll(async () => {
    priv = await startPrivateRedis();
    client = testRedis(priv.url, outageCfg); // the runtime's options (no offline queue), a longer timeout
    if (client.status !== "ready") await new Promise((r) => client.once("ready", r));
  });
  afterAll(async () => {
    priv.resume();
    client.disconnect();
    await priv.stop();
  });

  it("uses Redis while it is up, the local limiter (still bounded) when it is stopped or stalled, and Redis again after", async () => {
    const fallbacks: unknown[] = [];
    const local = new LocalRateLimiter();
    const lim = new RateLimiter({
      redis: () => client,
      timeoutMs: OUTAGE_TIMEOUT_MS,
      keyPrefix: prefix(),
      local,
      retryRedisAfterMs: 300,
      onFallback: (e) => fallbacks.push(e),
    });
    const c: RateCheck[] = [{ policy: policy(5, 60), key: "k" }];
    // up: Redis decides
    for (let i = 0; i < 2; i++) expect(await lim.check(c)).toMatchObject({ allowed: true, source: "redis" });

    // stopped: every check still answers, quickly, from this process's memory, which still limits
    await priv.stop();
    const outcomes = [];
    for (let i = 0; i < 12; i++) {
      const started = performance.now();
      const d = await lim.check(c);
      expect(performance.now() - started).toBeLessThan(OUTAGE_TIMEOUT_MS + 150);
      expect(d.source).toBe("local");
      outcomes.push(d.allowed);
    }
    expect(outcomes.filter(Boolean)).toHaveLength(5);
    expect(fallbacks.length).toBeGreaterThanOrEqual(1);

    // back up: after the retry interval Redis decides again (its own count: 2 so far)
    await priv.start();
    await new Promise((r) => setTimeout(r, 400));
    for (let i = 0; i < 40 && client.status !== "ready"; i++) await new Promise((r) => setTimeout(r, 50));
    const again = await lim.check(c);
    expect(again).toMatchObject({ allowed: true, source: "redis" });

    // stalled (SIGSTOP: the socket stays open, nothing answers): bounded by the command timeout
    priv.pause();
    try {
      await new Promise((r) => setTimeout(r, 350)); // past the retry interval
      const started = performance.now();
      const d = await lim.check(c);
      const elapsed = performance.now() - started;
      expect(d.source).toBe("local");
      expect(elapsed).toBeGreaterThanOrEqual(OUTAGE_TIMEOUT_MS - 5);
      expect(elapsed).toBeLessThan(OUTAGE_TIMEOUT_MS + 1000);
      expect(d.allowed).toBe(false); // the local log already holds 5
    } finally {
      priv.resume();
    }
  });
});

describe("RateLimiter on a Redis connection that stops answering without closing", () => {
  it("replaces the connection after three checks in a row time out, and Redis decides again", async () => {
    const proxy = await startTcpProxy(Number(new URL(SHARED_REDIS_URL).port || 6379));
    const client = testRedis(proxy.url("redis"), outageCfg); // no offline queue
    try {
      if (client.status !== "ready") await new Promise((r) => client.once("ready", r));
      const lim = new RateLimiter({
        redis: () => client,
        timeoutMs: OUTAGE_TIMEOUT_MS,
        keyPrefix: prefix(),
        retryRedisAfterMs: 0,
      });
      const c: RateCheck[] = [{ policy: policy(100, 60), key: "k" }];
      expect(await lim.check(c)).toMatchObject({ source: "redis" });
      proxy.stall(); // the path goes silent; a new connection would get through
      const sources: string[] = [];
      for (let i = 0; i < TIMEOUTS_BEFORE_RECONNECT; i++) sources.push((await lim.check(c)).source);
      expect(sources).toEqual(Array(TIMEOUTS_BEFORE_RECONNECT).fill("local"));
      // ioredis ends the old socket, destroys it after its disconnectTimeout (2 s) and connects again
      await new Promise((r) => {
        const timer = setTimeout(r, 5000);
        client.once("ready", () => r(clearTimeout(timer)));
      });
      expect(await lim.check(c)).toMatchObject({ allowed: true, source: "redis" });
    } finally {
      client.disconnect();
      await proxy.close();
    }
  });
});

describe("rate limits on the handlers (shared Redis, real database)", () => {
  let db: TestDatabase;
  const token = { value: "" };
  beforeAll(async () => {
    db = await createTestDatabase(5);
    process.env.DATABASE_URL = db.url;
    process.env.REDIS_URL = SHARED_REDIS_URL;
    process.env.RATE_LIMIT_PER_TOKEN = "3";
    process.env.RATE_LIMIT_PER_IP = "1000";
    process.env.RATE_LIMIT_WINDOW_SECONDS = "60";
    // What the cache and the limiter hold is checked here, not timeouts (the outage tests above have their own):
    // the product's 50 ms, for a reply or for the first connection, passes whenever a loaded CI machine stalls
    // this process that long, and the limiter then decides locally (no read-ahead) and the cache misses.
    process.env.REDIS_COMMAND_TIMEOUT_MS = "1000";
    process.env.REDIS_CONNECT_TIMEOUT_MS = "1000";
    resetConfig();
    resetRateLimiter();
    resetChatRuntime();
  });
  afterAll(async () => {
    await closeRedis();
    await closePool();
    await db.drop();
  });

  const ip = `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
  const send = async (name: string, event: APIGatewayProxyEventV2) => {
    const { handler } = (await import(`../../functions/${name}.ts`)) as { handler: HttpLambda };
    event.requestContext.http.sourceIp = ip;
    return call(handler, name, event);
  };

  it("reads the session's cache entries in the limiter's round trip: a cache hit sends no MGET of its own", async () => {
    const created = await send("sessions-create", httpEvent("POST", "/sessions/create", { body: {} }));
    const sid = created.json.session.session_id;
    const headers = { authorization: `Bearer ${created.json.token}` };
    // the first cache read of a process applies other instances' invalidations first (at most once a
    // second) and then reads afresh, ignoring what was read ahead: have it happen before counting
    await send("session-get", httpEvent("GET", `/sessions/${sid}`, { headers }));
    const mget = vi.spyOn(Redis.prototype, "mget");
    // the chat service's own read of a session's entries (what it does without a read-ahead)
    const ownRead = vi.spyOn(SessionCache.prototype, "fetch");
    try {
      const page = await send("session-messages", httpEvent("GET", `/sessions/${sid}/messages`, { headers }));
      expect(page.statusCode).toBe(200);
      expect(page.headers["x-cache"]).toBe("hit");
      expect(page.json.messages).toHaveLength(1);
      // a delete whose ids come as query parameters (no body) is read ahead too
      const del = await send(
        "messages-delete",
        httpEvent("DELETE", `/messages/delete?session_id=${sid}&message_id=${randomUUID()}`, { headers }),
      );
      expect(del.statusCode).toBe(404);
      expect(mget).not.toHaveBeenCalled();
      expect(ownRead).not.toHaveBeenCalled();
      // a body the hint cannot read (the key written with an escape): the service reads it itself, no more than
      // the function's read-ahead would have (the history's start, not an MGET of both entries). Another token:
      // this one has used its 3 requests.
      const edit = await send(
        "messages-edit",
        httpEvent("PUT", "/messages/edit", {
          body: `{"session\\u005fid":"${sid}","message_id":"${randomUUID()}","content":"x"}`,
          headers: { authorization: `Bearer ${newSessionToken()}`, "content-type": "application/json" },
        }),
      );
      expect(edit.statusCode).toBe(401);
      expect(mget).not.toHaveBeenCalled();
      expect(ownRead).toHaveBeenCalledTimes(1);
      expect(ownRead.mock.calls[0]?.[1]).toBe("head");
    } finally {
      mget.mockRestore();
      ownRead.mockRestore();
    }
  });

  it("refuses the request over the token's limit before the chat service does anything", async () => {
    const created = await send("sessions-create", httpEvent("POST", "/sessions/create", { body: {} }));
    expect(created.statusCode).toBe(201);
    token.value = created.json.token;
    const sid = created.json.session.session_id;
    const auth = { authorization: `Bearer ${token.value}` };
    const post = (content: string, extra: Record<string, string> = {}) =>
      send(
        "messages-post",
        httpEvent("POST", "/messages/post", {
          body: { session_id: sid, content },
          headers: { ...auth, ...extra },
        }),
      );
    for (let i = 0; i < 3; i++) {
      const res = await post(`hello ${i}`);
      expect(res.statusCode).toBe(201);
      expect(res.headers.ratelimit).toContain(`"per-token";r=${2 - i};t=`);
    }
    // the shared Redis holds the count, under the token's hash
    const redis = testRedis(SHARED_REDIS_URL, {
      ...cfg,
      REDIS_COMMAND_TIMEOUT_MS: 2000,
      REDIS_CONNECT_TIMEOUT_MS: 2000,
    });
    if (redis.status !== "ready") await new Promise((r) => redis.once("ready", r));
    try {
      expect(await redis.zcard(`rl:per-token:${tokenPartition(token.value)}`)).toBe(3);
    } finally {
      redis.disconnect();
    }

    const before = await rowCounts(db.pool);
    const limited = await post("one too many", { "idempotency-key": randomUUID() });
    expect(limited.statusCode).toBe(429);
    expect(limited.json).toMatchObject({ code: "rate_limited", status: 429 });
    expect(Number(limited.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(limited.headers["ratelimit-policy"]).toBe('"per-token";q=3;w=60, "per-ip";q=1000;w=60');
    // every session-scoped route is refused for this token, and nothing changed
    expect(
      (await send("session-erase", httpEvent("DELETE", `/sessions/${sid}`, { headers: auth }))).statusCode,
    ).toBe(429);
    expect(
      (await send("session-get", httpEvent("GET", `/sessions/${sid}`, { headers: auth }))).statusCode,
    ).toBe(429);
    expect(await rowCounts(db.pool)).toEqual(before);
    // the health check is never limited
    expect((await send("health", httpEvent("GET", "/health"))).headers.ratelimit).toBeUndefined();
  });
});
