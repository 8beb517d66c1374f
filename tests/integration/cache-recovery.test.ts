import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheGuard } from "../../layers/chat/cache/cache-guard.ts";
import { SessionCache } from "../../layers/chat/cache/session-cache.ts";
import { loadSnapshot, type Queryable } from "../../layers/chat/db/chat-store.ts";
import { type ChatFixture, chatFixture, SHARED_REDIS_URL, testRedis } from "../helpers/chat-fixture.ts";
import { startTcpProxy } from "../reliability/support/tcp-proxy.ts";

/**
 * A cache write that fails turns the cache off for the process and records the session as stale; a second later
 * the cache comes back after deleting every recorded session's entries. What a request read of Redis before that
 * (the rate limiter reads the session's entries ahead of the handler), or recorded while it ran, must not be
 * served afterwards.
 */
let f: ChatFixture;
let sessionCache: SessionCache;
beforeAll(async () => {
  f = await chatFixture();
  sessionCache = f.sessionCache as SessionCache;
});
afterAll(() => f.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The test database's pool, with `hook` run before each statement named `name` (it may throw, as Postgres would). */
function beforeStatement(name: string, hook: () => Promise<void>): Queryable {
  const pool = f.db.pool;
  return {
    query: (async (q: { name?: string }, ...rest: unknown[]) => {
      if (q?.name === name) await hook();
      return (pool.query as (...a: unknown[]) => Promise<unknown>)(q, ...rest);
    }) as Queryable["query"],
  };
}

/** More than CacheGuard's recovery interval (1 s). */
const RECOVERY_WAIT_MS = 1100;

/** The next write-through fails as a lost connection would (not a timeout: no retry), so the cache goes off. */
function failNextAppend(): void {
  const append = sessionCache.append.bind(sessionCache);
  sessionCache.append = async () => {
    sessionCache.append = append;
    throw new Error("Connection is closed. (test)");
  };
}

async function sessionWithTurn() {
  const created = await f.chat.createSession({});
  const id = created.session.session_id;
  await f.chat.postMessage(await f.chat.authorize(id, created.token), "first");
  return { id, token: created.token };
}

describe("coming back after a failed write-through", () => {
  it("does not serve entries a request read ahead before the recovery deleted them", async () => {
    const { id, token } = await sessionWithTurn();
    failNextAppend();
    const turn = await f.chat.postMessage(await f.chat.authorize(id, token), "second, acknowledged");
    expect(f.cache?.trusted).toBe(false);
    await sleep(RECOVERY_WAIT_MS);
    // the rate limiter's read ahead, before the handler: Redis still holds the entries from before the post
    const prefetched = await sessionCache.fetch(id, "head");
    const auth = await f.chat.authorize(id, token, prefetched);
    expect(f.cache?.trusted).toBe(true); // this request brought the cache back
    expect(auth.session.last_seq).toBe(turn.reply.seq);
    const page = await f.chat.history(auth, 0, 50);
    expect(page.messages.map((m) => m.content)).toContain("second, acknowledged");
  });

  it("stays off while sessions recorded as stale remain after a recovery's drain (a long outage's backlog)", async () => {
    const { id, token } = await sessionWithTurn();
    failNextAppend();
    await f.chat.postMessage(await f.chat.authorize(id, token), "second, acknowledged");
    expect(f.cache?.trusted).toBe(false);
    // a fleet's outage recorded 10,000 other sessions before this one: more than one drain applies (20 × 500)
    await f.db.pool.query(
      `INSERT INTO cache_invalidations (session_id, created_at)
       SELECT gen_random_uuid(), now() - interval '1 hour' FROM generate_series(1, 10000)`,
    );
    try {
      await sleep(RECOVERY_WAIT_MS);
      const auth = await f.chat.authorize(id, token);
      const page = await f.chat.history(auth, 0, 50);
      expect(page.messages.map((m) => m.content)).toContain("second, acknowledged");
      expect(page.fromCache).toBe(false);
      expect(f.cache?.trusted).toBe(false);
    } finally {
      // the next recoveries drain the rest, and the cache comes back (the tests below start from it on)
      for (let i = 0; i < 5 && !f.cache?.trusted; i++) {
        await sleep(RECOVERY_WAIT_MS);
        await f.chat.authorize(id, token);
      }
    }
    expect(f.cache?.trusted).toBe(true);
  });

  it("a drain is done once the records from before it began are applied, however fast other writers record new ones", async () => {
    // every batch the drain reads, another instance (its cache off) records one more session meanwhile
    const pool = f.db.pool;
    const othersWriting = beforeStatement("cache_invalidations_next", async () => {
      await pool.query("INSERT INTO cache_invalidations (session_id) VALUES (gen_random_uuid())");
    });
    await pool.query("INSERT INTO cache_invalidations (session_id) VALUES (gen_random_uuid())");
    try {
      expect(await new CacheGuard(sessionCache, othersWriting).drainInvalidations()).toBe(true);
    } finally {
      await pool.query("TRUNCATE cache_invalidations");
    }
  });

  it("waits an interval after a recovery whose drain outlasted it before the next, rather than draining back to back", async () => {
    const { id } = await sessionWithTurn();
    let batchMs = 0;
    const slowAtWill = beforeStatement("cache_invalidations_next", async () => {
      await sleep(batchMs);
    });
    const guard = new CacheGuard(sessionCache, slowAtWill);
    // three drains' worth (20 batches of 500 each): the periodic one and the first recovery leave some
    await f.db.pool.query(
      `INSERT INTO cache_invalidations (session_id, created_at)
       SELECT gen_random_uuid(), now() - interval '1 hour' FROM generate_series(1, 20500)`,
    );
    try {
      expect((await guard.get(id)).kind).toBe("miss"); // the periodic drain left records: the cache goes off
      expect(guard.trusted).toBe(false);
      await sleep(RECOVERY_WAIT_MS);
      batchMs = 70; // this recovery's drain takes 20 × 70 ms, longer than the interval
      expect((await guard.get(id)).kind).toBe("miss");
      batchMs = 0;
      expect((await guard.get(id)).kind).toBe("miss"); // not a recovery yet: it would drain the rest and come back
      expect(guard.trusted).toBe(false);
      await sleep(RECOVERY_WAIT_MS);
      expect((await guard.get(id)).kind).toBe("hit");
      expect(guard.trusted).toBe(true);
    } finally {
      await f.db.pool.query("TRUNCATE cache_invalidations");
    }
  });

  it("stays on when a periodic drain's Postgres query fails: that request misses, the reads after it do not go to Postgres", async () => {
    const { id } = await sessionWithTurn();
    let failures = 1;
    const slowPostgres = beforeStatement("cache_invalidations_next", async () => {
      if (failures-- > 0) throw new Error("canceling statement due to statement timeout (test)");
    });
    const guard = new CacheGuard(sessionCache, slowPostgres);
    expect((await guard.get(id)).kind).toBe("miss"); // its drain failed
    expect(guard.trusted).toBe(true);
    expect((await guard.get(id)).kind).toBe("hit");
  });

  it("turns off when it cannot apply what another instance recorded (Redis refusing writes), not for one request only", async () => {
    const { id, token } = await sessionWithTurn();
    const auth = await f.chat.authorize(id, token);
    expect((await f.chat.history(auth, 0, 50)).fromCache).toBe(true);
    const invalidate = sessionCache.invalidate.bind(sessionCache);
    sessionCache.invalidate = async () => {
      throw new Error("OOM command not allowed when used memory > 'maxmemory'. (test)");
    };
    try {
      // another instance, cut off from Redis while it wrote this session, recorded it
      await f.db.pool.query("INSERT INTO cache_invalidations (session_id) VALUES ($1)", [id]);
      await sleep(RECOVERY_WAIT_MS); // this instance's next drain is due
      expect((await f.cache?.get(id))?.kind).toBe("miss"); // its drain failed
      expect(f.cache?.trusted).toBe(false);
      expect((await f.cache?.get(id))?.kind).toBe("miss"); // and the next read does not trust Redis either
    } finally {
      sessionCache.invalidate = invalidate;
      await sleep(RECOVERY_WAIT_MS);
      await f.cache?.get(id); // recovers: drains the record
    }
    expect(f.cache?.trusted).toBe(true);
  });

  it("applies a session recorded while the recovery's drain was reading the table, before answering", async () => {
    // Another process's guard (its own trust) on the same Redis and database; its writer W records session X
    // while the cache is still off, and its INSERT commits only after a recovery R read the table (and found it
    // empty), but before R trusts the cache again.
    const x = await sessionWithTurn();
    const y = await sessionWithTurn();
    const deferred = () => {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      return { promise, resolve };
    };
    const insertMayRun = deferred();
    const committed = deferred();
    const wRecording = deferred(); // W's INSERT reached the database: W found the cache off and records X
    const recovering = deferred(); // a recovery's drain reads the table
    const pool = f.db.pool;
    let holding = false; // set for W and R only
    const hooked: Queryable = {
      query: (async (q: { name?: string }, ...rest: unknown[]) => {
        const run = () => (pool.query as (...a: unknown[]) => Promise<{ rows: unknown[] }>)(q, ...rest);
        if (q?.name === "cache_invalidations_add" && holding) {
          wRecording.resolve();
          await insertMayRun.promise;
          const done = await run();
          setTimeout(committed.resolve, 0); // after W has seen its insert return
          return done;
        }
        if (q?.name === "cache_invalidations_next" && holding) recovering.resolve();
        const res = await run();
        if (q?.name === "cache_invalidations_next" && res.rows.length === 0 && holding) {
          insertMayRun.resolve();
          await committed.promise;
        }
        return res;
      }) as Queryable["query"],
    };
    const guard = new CacheGuard(sessionCache, hooked);
    const session = async (id: string) =>
      (await f.chat.authorize(id, id === x.id ? x.token : y.token)).session;
    // what Redis holds for X now is X's state before W's change
    const before = await sessionCache.read(x.id, "session");
    expect(before.kind).toBe("hit");
    // W's change to X, in Postgres; its write-through comes below, while the cache is off
    await pool.query("UPDATE sessions SET generation = generation + 1 WHERE session_id = $1", [x.id]);
    const changed = (await loadSnapshot(pool, x.id, 500))?.session;
    if (!changed) throw new Error("session X not found");
    const ySession = await session(y.id);
    // the guard goes off: a write-through fails (its recovery is due a second from now)
    const put = sessionCache.put.bind(sessionCache);
    sessionCache.put = async () => {
      sessionCache.put = put;
      throw new Error("Connection is closed. (test)");
    };
    await guard.afterWrite(ySession, null);
    expect(guard.trusted).toBe(false);
    holding = true;
    const w = guard.afterWrite(changed, null);
    let r: Promise<unknown> | undefined;
    try {
      // W must find the cache off before any recovery begins: had W begun it itself, it would wait for its own insert
      const first = await Promise.race([
        wRecording.promise.then(() => "W records X"),
        recovering.promise.then(() => "a recovery began first"),
      ]);
      expect(first).toBe("W records X");
      // R: reads before the recovery is due are misses that change nothing; the first one after it brings the
      // cache back, and its drain holds it until W's insert has committed
      await expect
        .poll(
          () => {
            r = guard.get(y.id);
            return Promise.race([r.then(() => false), recovering.promise.then(() => true)]);
          },
          { timeout: 10_000, interval: 50 },
        )
        .toBe(true);
      await Promise.all([w, r]);
    } finally {
      // a failure above must not leave W or R waiting for each other
      insertMayRun.resolve();
      committed.resolve();
      await Promise.allSettled([w, r]);
    }
    expect(guard.trusted).toBe(true);
    // by the time W answered, X's stale entry is gone (a miss, or a placeholder at X's new generation)
    const after = await sessionCache.read(x.id, "session");
    if (after.kind === "hit") expect(after.value.session.generation).toBe(changed.generation);
    else expect(after.kind).not.toBe("erased");
  });
});

describe("a Redis connection that stops answering without closing", () => {
  it("is replaced: the cache comes back on a new connection instead of waiting for the kernel to give up", async () => {
    const proxy = await startTcpProxy(Number(new URL(SHARED_REDIS_URL).port || 6379));
    const redis = testRedis(proxy.url("redis"), { ...f.config, REDIS_COMMAND_TIMEOUT_MS: 200 });
    try {
      if (redis.status !== "ready") await new Promise((r) => redis.once("ready", r));
      const cache = new SessionCache(redis, {
        sessionTtlSeconds: 60,
        historyTtlSeconds: 60,
        historyMaxBytes: f.config.CACHE_HISTORY_MAX_BYTES,
        batchTimeoutMs: 400,
      });
      const guard = new CacheGuard(cache, f.servicePool);
      const { id } = await sessionWithTurn();
      await guard.get(id);
      expect(guard.trusted).toBe(true);
      proxy.stall(); // the path to Redis goes silent; a new connection would get through
      // two reads that time out leave the cache on (one late reply on a busy event loop says little); the third turns it off
      for (let i = 0; i < 2; i++) await guard.get(id);
      expect(guard.trusted).toBe(true);
      await guard.get(id);
      expect(guard.trusted).toBe(false);
      for (let i = 0; i < 6 && !guard.trusted; i++) {
        await sleep(RECOVERY_WAIT_MS);
        await guard.get(id);
      }
      expect(guard.trusted).toBe(true);
    } finally {
      redis.disconnect();
      await proxy.close();
    }
  });
});
