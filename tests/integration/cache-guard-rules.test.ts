import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheGuard } from "../../layers/chat/cache/cache-guard.ts";
import { type PrefetchedEntries, SessionCache } from "../../layers/chat/cache/session-cache.ts";
import { loadSnapshot, type Queryable } from "../../layers/chat/db/chat-store.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * CacheGuard's rules for failed reads and refills, and for entries read ahead by someone else, on the shared Redis
 * with faults injected around the real SessionCache.
 */
class FlakyReads extends SessionCache {
  /** How many of the next reads (and refills) fail as a timeout would. */
  failReads = 0;
  failPuts = 0;

  override async read(...args: Parameters<SessionCache["read"]>) {
    if (this.failReads > 0) {
      this.failReads--;
      throw new Error("Command timed out");
    }
    return super.read(...args);
  }

  /** How many of the next erasures time out as a bounded MULTI does ("Redis batch timed out after …"). */
  failErases = 0;

  override async markErased(sessionId: string) {
    if (this.failErases > 0) {
      this.failErases--;
      throw new Error("Redis batch timed out after 400 ms");
    }
    return super.markErased(sessionId);
  }

  override async put(...args: Parameters<SessionCache["put"]>) {
    if (this.failPuts > 0) {
      this.failPuts--;
      throw new Error("Command timed out");
    }
    return super.put(...args);
  }
}

let f: ChatFixture;
let flaky: FlakyReads;
beforeAll(async () => {
  f = await chatFixture();
  flaky = new FlakyReads(f.redis!, {
    sessionTtlSeconds: 300,
    historyTtlSeconds: 300,
    historyMaxBytes: 1 << 20,
  });
});
afterAll(() => f.close());

/** A session whose entries are in Redis (a post writes them through). */
async function cachedSession() {
  const created = await f.chat.createSession({});
  const id = created.session.session_id;
  await f.chat.postMessage(await f.chat.authorize(id, created.token), "hello");
  return id;
}

describe("failed reads and refills", () => {
  it("turns the cache off only after consecutive failed reads: a successful read starts the count again", async () => {
    const id = await cachedSession();
    const guard = new CacheGuard(flaky, f.db.pool);
    flaky.failReads = 2;
    expect((await guard.get(id)).kind).toBe("miss");
    expect((await guard.get(id)).kind).toBe("miss");
    expect((await guard.get(id)).kind).toBe("hit");
    // two failures, a success, one failure: never three in a row
    flaky.failReads = 1;
    expect((await guard.get(id)).kind).toBe("miss");
    expect(guard.trusted).toBe(true);
    flaky.failReads = 2;
    await guard.get(id);
    await guard.get(id);
    expect(guard.trusted).toBe(false);
  });

  it("a failed refill costs a miss, not the cache: it stays on until failures come in a row", async () => {
    const id = await cachedSession();
    const guard = new CacheGuard(flaky, f.db.pool);
    const found = await guard.get(id);
    if (found.kind !== "hit") throw new Error("expected the session in the cache");
    flaky.failPuts = 1;
    await guard.fill(found.value.session, null);
    // a put conditional on generation cannot leave anything stale: the cache stays on and still serves the session
    expect(guard.trusted).toBe(true);
    expect((await guard.get(id)).kind).toBe("hit");
  });
});

describe("a write-through that times out", () => {
  it("is tried again when a batch's own bound ran out, as for a command timeout: the cache stays on", async () => {
    const id = await cachedSession();
    const guard = new CacheGuard(flaky, f.db.pool);
    flaky.failErases = 1;
    await guard.afterErase(id);
    expect(guard.trusted).toBe(true);
    expect((await guard.get(id)).kind).toBe("erased");
  });
});

describe("entries read ahead", () => {
  it("are used only for the session they were read for", async () => {
    const a = await cachedSession();
    const b = await cachedSession();
    const guard = new CacheGuard(flaky, f.db.pool);
    // the rate limiter read A's entries; a lookup of B must not take them for B's
    const prefetchedA = await flaky.fetch(a, "whole");
    const found = await guard.get(b, prefetchedA);
    expect(found.kind).toBe("hit");
    expect(found.kind === "hit" && found.value.session.session_id).toBe(b);
  });

  it("are not used when the lookup's own drain invalidated the session after they were read", async () => {
    const id = await cachedSession();
    // another instance, cut off from Redis, changed the session in Postgres and recorded it as stale
    await f.db.pool.query("UPDATE sessions SET generation = generation + 1 WHERE session_id = $1", [id]);
    await f.db.pool.query("INSERT INTO cache_invalidations (session_id) VALUES ($1)", [id]);
    // read ahead before the drain: the entry is the stale one
    const prefetched = await flaky.fetch(id, "whole");
    expect(flaky.lookupPrefetched(prefetched).kind).toBe("hit");
    const guard = new CacheGuard(flaky, f.db.pool); // its first lookup drains
    // the drain left a placeholder at the new generation: a miss, never the entry read before it
    expect((await guard.get(id, prefetched)).kind).toBe("miss");
    expect(guard.trusted).toBe(true);
  });

  it("read while a recovery was draining are not used once it trusts the cache again", async () => {
    const x = await cachedSession();
    const y = await cachedSession();
    const pool = f.db.pool;
    let prefetched: PrefetchedEntries | undefined;
    let duringRecovery = false;
    // after the recovery's drain found nothing more to apply, and before it trusts the cache: another instance
    // changes X and invalidates it, and the rate limiter reads X's entries ahead (still the old ones) meanwhile
    const hooked: Queryable = {
      query: (async (q: { name?: string }, ...rest: unknown[]) => {
        const res = await (pool.query as (...a: unknown[]) => Promise<{ rows: unknown[] }>)(q, ...rest);
        if (duringRecovery && q?.name === "cache_invalidations_next" && res.rows.length === 0) {
          duringRecovery = false;
          prefetched = await flaky.fetch(x, "whole");
          await pool.query("UPDATE sessions SET generation = generation + 1 WHERE session_id = $1", [x]);
          const gen = (await loadSnapshot(pool, x, 500))!.session.generation;
          await flaky.invalidate([{ sessionId: x, generation: gen }]);
        }
        return res;
      }) as Queryable["query"],
    };
    const guard = new CacheGuard(flaky, hooked);
    const ySession = (await loadSnapshot(pool, y, 500))!.session;
    flaky.failPuts = 2; // a write-through and its retry time out: the cache goes off
    await guard.afterWrite(ySession, null);
    expect(guard.trusted).toBe(false);
    await new Promise((r) => setTimeout(r, 1100)); // the recovery is due
    duringRecovery = true;
    await guard.get(y); // brings the cache back
    expect(guard.trusted).toBe(true);
    expect(prefetched).toBeDefined();
    const found = await guard.get(x, prefetched);
    // whatever the lookup found, it is not X's entry from before the change
    expect(found.kind).toBe("miss");
  });
});

describe("draining recorded invalidations", () => {
  it("keeps a record made again while the drain applied it: that later change is the next drain's", async () => {
    const x = await cachedSession();
    const y = await cachedSession();
    const pool = f.db.pool;
    // W: another instance whose cache is off (a write-through and its retry timed out), so it records writes
    const w = new CacheGuard(flaky, pool);
    flaky.failPuts = 2;
    await w.afterWrite((await loadSnapshot(pool, y, 500))!.session, null);
    expect(w.trusted).toBe(false);
    await pool.query("INSERT INTO cache_invalidations (session_id) VALUES ($1)", [x]);
    const xSession = (await loadSnapshot(pool, x, 500))!.session;
    // between a drain's invalidation in Redis and its DELETE, W changes X again and records it
    let once = true;
    const recordsAgain: Queryable = {
      query: (async (q: { name?: string }, ...rest: unknown[]) => {
        if (q?.name === "cache_invalidations_done" && once) {
          once = false;
          await w.afterWrite(xSession, null);
        }
        return (pool.query as (...a: unknown[]) => Promise<unknown>)(q, ...rest);
      }) as Queryable["query"],
    };
    try {
      expect(await new CacheGuard(flaky, recordsAgain).drainInvalidations()).toBe(true);
      const left = await pool.query("SELECT session_id FROM cache_invalidations");
      expect(left.rows.map((r) => r.session_id)).toEqual([x]);
    } finally {
      await pool.query("TRUNCATE cache_invalidations");
    }
  });

  it("a recovery counts as the periodic drain: the reads just after it do not read the table again", async () => {
    const id = await cachedSession();
    const pool = f.db.pool;
    let drainReads = 0;
    const counting: Queryable = {
      query: (async (q: { name?: string }, ...rest: unknown[]) => {
        if (q?.name === "cache_invalidations_next") drainReads++;
        return (pool.query as (...a: unknown[]) => Promise<unknown>)(q, ...rest);
      }) as Queryable["query"],
    };
    const guard = new CacheGuard(flaky, counting);
    flaky.failPuts = 2; // a write-through and its retry time out: the cache goes off
    await guard.afterWrite((await loadSnapshot(pool, id, 500))!.session, null);
    expect(guard.trusted).toBe(false);
    await new Promise((r) => setTimeout(r, 1100));
    const before = drainReads;
    await guard.get(id); // recovers: drains
    expect(guard.trusted).toBe(true);
    // one drain: the batch holding the recorded session, then the read that finds none left
    expect(drainReads - before).toBe(2);
    await guard.get(id);
    expect(drainReads - before).toBe(2);
    await pool.query("TRUNCATE cache_invalidations");
  });

  it("fails, keeping the records, when Redis refuses the invalidations it was sent", async () => {
    const id = await cachedSession();
    // a command that Redis answers with an error inside the pipeline (here WRONGTYPE; OOM or READONLY alike)
    await f.redis!.del(`chat:{${id}}:s`);
    await f.redis!.lpush(`chat:{${id}}:s`, "not a string");
    await f.db.pool.query("INSERT INTO cache_invalidations (session_id) VALUES ($1)", [id]);
    try {
      await expect(new CacheGuard(flaky, f.db.pool).drainInvalidations()).rejects.toThrow();
      const left = await f.db.pool.query("SELECT 1 FROM cache_invalidations WHERE session_id = $1", [id]);
      expect(left.rowCount).toBe(1);
    } finally {
      await f.redis!.del(`chat:{${id}}:s`);
      await f.db.pool.query("TRUNCATE cache_invalidations");
    }
  });

  it("a recorded session that no longer exists gets the erased tombstone, so a stale reader cannot refill it", async () => {
    const id = await cachedSession();
    const stale = await loadSnapshot(f.db.pool, id, 500);
    // another instance, cut off from Redis, erased the session and recorded it
    await f.db.pool.query("DELETE FROM sessions WHERE session_id = $1", [id]);
    await f.db.pool.query("INSERT INTO cache_invalidations (session_id) VALUES ($1)", [id]);
    const guard = new CacheGuard(flaky, f.db.pool);
    expect(await guard.drainInvalidations()).toBe(true);
    // a reader that read the session before the erase fills what it read
    await guard.fill(stale!.session, stale!.messages);
    expect((await guard.get(id)).kind).toBe("erased");
  });
});
