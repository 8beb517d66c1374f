import type pg from "pg";
import type { CacheGuard } from "../cache/cache-guard.ts";
import { eraseSession } from "../db/erase-store.ts";
import { chatEvent } from "../events/cloudevents.ts";
import { prune } from "./prune.ts";

export interface MaintenanceResult {
  outboxPruned: number;
  idempotencyExpired: number;
  consumedEventsPruned: number;
  sessionsPurged: number;
  cacheInvalidationsDrained: boolean;
}

export interface MaintenanceOptions {
  outboxRetentionHours: number;
  /** How long events-consumer remembers an event id; must exceed the topic's retention (redeliveries). */
  consumedEventsRetentionHours: number;
  sessionRetentionDays: number;
  /** Idle sessions erased per run. */
  purgeBatch?: number;
  /** Rows per DELETE statement when pruning. */
  pruneBatch?: number;
  /** No new batch starts after this much time (the function's timeout, less a margin). */
  timeBudgetMs?: number;
}

/**
 * Housekeeping: published events past retention, expired idempotency records, consumed event ids past
 * retention, idle sessions past retention. What the time budget leaves undone, the next run does.
 */
export async function runMaintenance(
  pool: pg.Pool,
  cache: CacheGuard | null,
  opts: MaintenanceOptions,
): Promise<MaintenanceResult> {
  const deadline = Date.now() + (opts.timeBudgetMs ?? 60_000);
  const batch = { batch: opts.pruneBatch ?? 5000, deadline };
  const outboxPruned = await prune(pool, "outbox", opts.outboxRetentionHours, batch);
  const idempotencyExpired = await prune(pool, "idempotency", undefined, batch);
  const consumedEventsPruned = await prune(pool, "consumedEvents", opts.consumedEventsRetentionHours, batch);
  let sessionsPurged = 0;
  if (opts.sessionRetentionDays > 0) {
    const idle = await pool.query(
      "SELECT session_id FROM sessions WHERE updated_at < now() - make_interval(days => $1) ORDER BY updated_at LIMIT $2",
      [opts.sessionRetentionDays, opts.purgeBatch ?? 500],
    );
    for (const { session_id } of idle.rows as { session_id: string }[]) {
      if (Date.now() >= deadline) break;
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
  return {
    outboxPruned,
    idempotencyExpired,
    consumedEventsPruned,
    sessionsPurged,
    cacheInvalidationsDrained,
  };
}
