import type pg from "pg";
import type { CacheGuard } from "../cache/cache-guard.ts";
import { eraseSession } from "../db/erase-store.ts";
import { chatEvent } from "../events/cloudevents.ts";
import { pruneOutbox } from "../events/outbox-store.ts";

export interface MaintenanceResult {
  outboxPruned: number;
  idempotencyExpired: number;
  sessionsPurged: number;
  cacheInvalidationsDrained: boolean;
}

/** Housekeeping: published events past retention, expired idempotency records, idle sessions past retention. */
export async function runMaintenance(
  pool: pg.Pool,
  cache: CacheGuard | null,
  opts: { outboxRetentionHours: number; sessionRetentionDays: number; purgeBatch?: number },
): Promise<MaintenanceResult> {
  const outboxPruned = await pruneOutbox(pool, opts.outboxRetentionHours);
  const idem = await pool.query("DELETE FROM idempotency_records WHERE expires_at < now()");
  let sessionsPurged = 0;
  if (opts.sessionRetentionDays > 0) {
    const idle = await pool.query(
      "SELECT session_id FROM sessions WHERE updated_at < now() - make_interval(days => $1) ORDER BY updated_at LIMIT $2",
      [opts.sessionRetentionDays, opts.purgeBatch ?? 500],
    );
    for (const { session_id } of idle.rows as { session_id: string }[]) {
      const at = new Date().toISOString();
      if (
        await eraseSession(pool, session_id, chatEvent("chat.session.erased", session_id, at, { session_id }))
      ) {
        sessionsPurged++;
        await cache?.afterErase(session_id);
      }
    }
  }
  const cacheInvalidationsDrained = cache ? await cache.drainInvalidations().catch(() => false) : true;
  return { outboxPruned, idempotencyExpired: idem.rowCount ?? 0, sessionsPurged, cacheInvalidationsDrained };
}
