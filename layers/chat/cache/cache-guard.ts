import type { Message, SessionRecord } from "../chat/types.ts";
import type { Queryable } from "../db/chat-store.ts";
import type { CacheLookup, SessionCache } from "./session-cache.ts";

const RECOVERY_INTERVAL_MS = 1000;

/**
 * Wraps the cache so that Redis can fail without failing a request:
 * - any Redis error turns the cache off for this process (reads go to Postgres) and notes it;
 * - while off, writers record their sessions in `cache_invalidations` (Postgres), because the entries
 *   Redis still holds for them are now stale;
 * - at most once a second it tries to come back: it first deletes every recorded session's entries,
 *   then trusts the cache again. So nothing written during the outage is served stale after it.
 */
export class CacheGuard {
  readonly #cache: SessionCache;
  readonly #db: Queryable;
  #trusted = true;
  #nextRecoveryAt = 0;
  #recovering: Promise<boolean> | undefined;

  constructor(cache: SessionCache, db: Queryable) {
    this.#cache = cache;
    this.#db = db;
  }

  get trusted(): boolean {
    return this.#trusted;
  }

  async get(sessionId: string): Promise<CacheLookup> {
    if (!(await this.#usable())) return { kind: "miss" };
    try {
      return await this.#cache.get(sessionId);
    } catch {
      this.#distrust();
      return { kind: "miss" };
    }
  }

  /** Refill after a read from Postgres; a failure only costs the next reader a miss. */
  async fill(session: SessionRecord, history: Message[] | null): Promise<void> {
    if (!(await this.#usable())) return;
    try {
      await this.#cache.put(session, history);
    } catch {
      this.#distrust();
    }
  }

  /** After a committed change: store the new state, or make sure the old one can never be served. */
  async afterWrite(session: SessionRecord, history: Message[] | null): Promise<void> {
    if (await this.#usable()) {
      try {
        await this.#cache.put(session, history);
        return;
      } catch {
        this.#distrust();
      }
    }
    await this.#recordInvalidation([session.session_id]);
  }

  async afterErase(sessionId: string): Promise<void> {
    if (await this.#usable()) {
      try {
        await this.#cache.markErased(sessionId);
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

  /** Deletes the entries of every session recorded while Redis was away; true when done. */
  async drainInvalidations(): Promise<boolean> {
    for (;;) {
      const res = await this.#db.query({
        name: "cache_invalidations_next",
        text: "SELECT session_id FROM cache_invalidations ORDER BY created_at LIMIT 500",
      });
      const ids = res.rows.map((r) => r.session_id as string);
      if (ids.length === 0) return true;
      await this.#cache.invalidate(ids);
      await this.#db.query({
        name: "cache_invalidations_done",
        text: "DELETE FROM cache_invalidations WHERE session_id = ANY($1::uuid[])",
        values: [ids],
      });
    }
  }

  #distrust(): void {
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
      await this.#cache.ping();
      await this.drainInvalidations();
      this.#trusted = true;
      return true;
    } catch {
      return false;
    }
  }

  async #recordInvalidation(sessionIds: string[]): Promise<void> {
    await this.#db.query({
      name: "cache_invalidations_add",
      text: "INSERT INTO cache_invalidations (session_id) SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING",
      values: [sessionIds],
    });
  }
}
