import type { Message, SessionRecord } from "../chat/types.ts";
import type { Queryable } from "../db/chat-store.ts";
import { isRedisTimeout } from "./redis-timeout.ts";
import type { CacheLookup, PrefetchedEntries, SessionCache, SessionRead } from "./session-cache.ts";

const RECOVERY_INTERVAL_MS = 1000;
/** Failed recovery pings in a row before the connection is replaced. */
const PINGS_BEFORE_RECONNECT = 3;

/** The drain could not write the placeholders to Redis (as opposed to reading the records from Postgres). */
class CacheWriteFailed extends Error {
  constructor(cause: unknown) {
    super("the cache refused an invalidation", { cause });
  }
}

/** Consecutive failed reads that turn the cache off, so an outage costs one timeout per second, not per request. */
const READ_FAILURES_TO_DISTRUST = 3;

/**
 * Wraps the cache so that Redis can fail without failing a request:
 * - a failed read or refill is a miss; only several in a row turn the cache off (a busy CPU alone can make a
 *   50 ms command time out, and a failed read cannot make anything stale);
 * - a failed write (after one retry if it timed out) turns the cache off for this process at once (reads go to
 *   Postgres): the entry it meant to replace may still be in Redis;
 * - while off, writers record their sessions in `cache_invalidations` (Postgres), because the entries
 *   Redis still holds for them are now stale;
 * - at most once a second it tries to come back: it first deletes every recorded session's entries,
 *   then trusts the cache again. So nothing written during the outage is served stale after it.
 */
export class CacheGuard {
  readonly #cache: SessionCache;
  readonly #db: Queryable;
  #trusted = true;
  #readFailures = 0;
  #nextDrainAt = 0;
  #failedPings = 0;
  #draining: Promise<boolean> | undefined;
  #nextRecoveryAt = 0;
  #recovering: Promise<boolean> | undefined;
  /**
   * performance.now() when this process last made stale entries unreadable (a drain that invalidated some) or
   * trusted the cache again: entries read before it (a prefetch) may be ones it removed, or ones it never knew of.
   */
  #clearedAt = Number.NEGATIVE_INFINITY;

  constructor(cache: SessionCache, db: Queryable) {
    this.#cache = cache;
    this.#db = db;
  }

  get trusted(): boolean {
    return this.#trusted;
  }

  /**
   * `prefetched`: the session's entries as just read by the rate limiter's round trip (saves one). Without it (or
   * when it may be stale), `read` is what this reads: a request before its authorization no more than its function's
   * read-ahead would have.
   */
  async get(
    sessionId: string,
    prefetched?: PrefetchedEntries,
    read: SessionRead = "whole",
  ): Promise<CacheLookup> {
    if (!(await this.#usable())) return { kind: "miss" };
    // Another instance may have been cut off from Redis while writing: apply what it recorded, at most
    // once a second, so its changes cannot be hidden by this instance's cache for longer than that.
    if (Date.now() >= this.#nextDrainAt && !(await this.#drainShared())) return { kind: "miss" };
    // read before a drain or a recovery (this request's or another's): it may hold an entry since removed
    const ready =
      prefetched?.sessionId === sessionId && prefetched.sentAt > this.#clearedAt ? prefetched : undefined;
    return this.#reading(async () =>
      ready ? this.#cache.lookupPrefetched(ready) : this.#cache.read(sessionId, prefetched?.read ?? read),
    );
  }

  /** A further read of a session this request already read through get(): e.g. more of one end of its history. */
  async read(sessionId: string, read: SessionRead, bytes: number): Promise<CacheLookup> {
    if (!(await this.#usable())) return { kind: "miss" };
    return this.#reading(() => this.#cache.read(sessionId, read, bytes));
  }

  async #reading(read: () => Promise<CacheLookup>): Promise<CacheLookup> {
    try {
      const found = await read();
      this.#readFailures = 0;
      return found;
    } catch {
      this.#readFailed();
      return { kind: "miss" };
    }
  }

  /** Refill after a read from Postgres; a failure only costs the next reader a miss. */
  async fill(session: SessionRecord, history: Message[] | null): Promise<void> {
    if (!(await this.#usable())) return;
    try {
      await this.#cache.put(session, history);
    } catch {
      // the put is conditional on generation: failing leaves at worst an older entry that reads already reject
      this.#readFailed();
    }
  }

  /** After a committed change: store the new state, or make sure the old one can never be served. */
  async afterWrite(session: SessionRecord, history: Message[] | null): Promise<void> {
    await this.#writeOrInvalidate(session.session_id, () => this.#cache.put(session, history));
  }

  /** As afterWrite, for a change from `previousGeneration` that only appended messages (a post). */
  async afterAppend(
    session: SessionRecord,
    previousGeneration: number,
    appended: readonly Message[],
    maxMessages: number,
  ): Promise<void> {
    await this.#writeOrInvalidate(session.session_id, () =>
      this.#cache.append(session, previousGeneration, appended, maxMessages),
    );
  }

  /**
   * After a change Postgres never answered (it may have committed): the entries from before it must not be served,
   * so a client that reads the session to learn whether it was made sees it if it was. A placeholder at the
   * generation the change would have set makes reads miss and lets only that state, or a newer one, be filled back.
   */
  async afterUncertainChange(sessionId: string, generation: number): Promise<void> {
    await this.#writeOrInvalidate(sessionId, () => this.#cache.invalidate([{ sessionId, generation }]));
  }

  async afterErase(sessionId: string): Promise<void> {
    await this.#writeOrInvalidate(sessionId, () => this.#cache.markErased(sessionId));
  }

  /**
   * A write after a committed change; if it cannot be made, the session's old entry must never be served.
   * A timeout gets one more try before the cache goes off: on a busy event loop a single 50 ms timeout says little
   * about Redis, and every write-through is safe to repeat (each is conditional on generations, and the retry goes
   * down the same connection, so Redis runs it after the first attempt, if that one ran at all).
   */
  async #writeOrInvalidate(sessionId: string, write: () => Promise<unknown>): Promise<void> {
    if (await this.#usable()) {
      try {
        await write().catch((err: unknown) => {
          if (!isRedisTimeout(err)) throw err;
          return write();
        });
        return;
      } catch {
        this.#distrust();
      }
    }
    await this.#recordInvalidation([sessionId]);
  }

  async ping(): Promise<void> {
    await this.#cache.ping();
  }

  /**
   * Applies every recorded invalidation: each session's entry is replaced by a placeholder at its current
   * generation (so a reader holding an older snapshot cannot fill it back), and the record is removed
   * only if it was not recorded again meanwhile. True when no record is left from before the drain began: one
   * recorded since (writers keep recording while the cache is off) is the next drain's, or its writer's own
   * (recordInvalidation); waiting for an empty table would never end under steady writes.
   */
  async drainInvalidations(): Promise<boolean> {
    let before: string | null = null; // the first batch's statement start: records from after it are left
    // bounded: a table that keeps refilling faster than we drain is drained again on the next call
    for (let batch = 0; batch < 20; batch++) {
      const res = await this.#db.query({
        name: "cache_invalidations_next",
        text: `SELECT c.session_id, c.created_at::text AS created_at, s.generation,
                      coalesce($1::timestamptz, statement_timestamp())::text AS before
                 FROM cache_invalidations c LEFT JOIN sessions s USING (session_id)
                WHERE c.created_at < coalesce($1::timestamptz, statement_timestamp())
                ORDER BY c.created_at LIMIT 500`,
        values: [before],
      });
      if (res.rows.length === 0) return true;
      before ??= res.rows[0].before as string;
      try {
        await this.#cache.invalidate(
          res.rows.map((r) => ({
            sessionId: r.session_id as string,
            generation: r.generation === null ? null : Number(r.generation),
          })),
        );
      } catch (err) {
        throw new CacheWriteFailed(err);
      }
      // a read sent before now may have been answered before the invalidation ran: see get()
      this.#clearedAt = performance.now();
      await this.#db.query({
        name: "cache_invalidations_done",
        text: `DELETE FROM cache_invalidations c USING unnest($1::uuid[], $2::timestamptz[]) AS d(id, at)
                WHERE c.session_id = d.id AND c.created_at = d.at`,
        // created_at as text: a JS Date would drop the microseconds and match nothing
        values: [res.rows.map((r) => r.session_id), res.rows.map((r) => r.created_at)],
      });
    }
    return false;
  }

  /**
   * A drain that Redis fails (it answers reads but refuses writes: full, or a demoted primary) or that leaves
   * sessions recorded before it began turns the cache off: until they are applied, this instance could serve entries
   * recorded as stale. One whose Postgres query fails costs this request a miss only (the next drain is a second
   * away): turning the cache off then would send every read to a Postgres that is already slow.
   */
  async #drainShared(): Promise<boolean> {
    this.#draining ??= (async () => {
      this.#nextDrainAt = Date.now() + RECOVERY_INTERVAL_MS;
      try {
        const drained = await this.drainInvalidations();
        if (!drained) this.#distrust();
        return drained;
      } catch (err) {
        if (err instanceof CacheWriteFailed) this.#distrust();
        return false;
      } finally {
        this.#draining = undefined;
      }
    })();
    return this.#draining;
  }

  #readFailed(): void {
    this.#readFailures++;
    if (this.#readFailures >= READ_FAILURES_TO_DISTRUST) this.#distrust();
  }

  #distrust(): void {
    this.#readFailures = 0;
    this.#trusted = false;
    this.#nextRecoveryAt = Date.now() + RECOVERY_INTERVAL_MS;
  }

  async #usable(): Promise<boolean> {
    if (this.#trusted) return true;
    if (Date.now() < this.#nextRecoveryAt) return false;
    this.#recovering ??= this.#recover().finally(() => {
      this.#recovering = undefined;
    });
    return this.#recovering;
  }

  async #recover(): Promise<boolean> {
    this.#nextRecoveryAt = Date.now() + RECOVERY_INTERVAL_MS;
    try {
      try {
        await this.#cache.ping();
        this.#failedPings = 0;
      } catch (err) {
        // the cache is off and Redis has not answered a ping for a few recoveries in a row: the connection may be
        // half-open (a slow Redis alone would not be helped by reconnecting every second)
        if (++this.#failedPings >= PINGS_BEFORE_RECONNECT) {
          this.#failedPings = 0;
          this.#cache.reconnect();
        }
        throw err;
      }
      // A drain bounds its work (20 batches); recorded sessions left after it may be stale in Redis: the cache
      // stays off, and the next recovery drains on.
      if (!(await this.drainInvalidations())) return false;
      this.#nextDrainAt = Date.now() + RECOVERY_INTERVAL_MS;
      // entries read while the cache was off, even after the drain, were read by a request that trusted nothing
      this.#clearedAt = performance.now();
      this.#trusted = true;
      return true;
    } catch {
      return false;
    } finally {
      // counted from the end: a drain that outlasts the interval (a long backlog, a slow Postgres) is not followed
      // by another at once, in the same request, and the instance's requests are not held up back to back
      this.#nextRecoveryAt = Date.now() + RECOVERY_INTERVAL_MS;
    }
  }

  /**
   * Records sessions whose entries may now be stale. If the cache came back while the record was being
   * written, or is coming back now, the recovery's drain may have missed it (its read of the table may have come
   * before this insert's commit): once the recovery is done, apply the record, before the request is answered.
   * A failure here does not fail the request (its change is committed); the entry then lives at most its TTL.
   */
  async #recordInvalidation(sessionIds: string[]): Promise<void> {
    try {
      await this.#db.query({
        name: "cache_invalidations_add",
        text: `INSERT INTO cache_invalidations (session_id) SELECT unnest($1::uuid[])
               ON CONFLICT (session_id) DO UPDATE SET created_at = clock_timestamp()`,
        values: [sessionIds],
      });
      if (this.#recovering) await this.#recovering;
      if (this.#trusted && !(await this.drainInvalidations())) this.#distrust();
    } catch {
      // nothing more to do: see above
    }
  }
}
