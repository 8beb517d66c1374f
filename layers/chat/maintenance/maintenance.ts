import type pg from "pg";
import type { CacheGuard } from "../cache/cache-guard.ts";
import { eraseSession } from "../db/erase-store.ts";
import { chatEvent } from "../events/cloudevents.ts";
import { prune, pruneOutbox } from "./prune.ts";

export interface MaintenanceResult {
  outboxPruned: number;
  idempotencyExpired: number;
  consumedEventsPruned: number;
  /** events-consumer's rows of sessions erased over consumedEventsRetentionHours ago. */
  erasedActivityPruned: number;
  sessionsPurged: number;
  /** Idle sessions whose erase failed this run (e.g. a lock timeout): left for the next run. */
  sessionsFailed: number;
  cacheInvalidationsDrained: boolean;
}

export interface MaintenanceOptions {
  outboxRetentionHours: number;
  /**
   * How long events-consumer remembers an event id, and an erased session's activity row after its last event;
   * must exceed the topic's retention (redeliveries).
   */
  consumedEventsRetentionHours: number;
  sessionRetentionDays: number;
  /** Idle sessions selected per query; a run erases batch after batch until none is left or its time is up. */
  purgeBatch?: number;
  /** Rows per DELETE statement when pruning. */
  pruneBatch?: number;
  /** No new batch starts after this much time (the function's timeout, less a margin). */
  timeBudgetMs?: number;
}

/**
 * Housekeeping: published events past retention, expired idempotency records, consumed event ids and erased
 * sessions' activity rows past retention, idle sessions past retention. What the time budget leaves undone, the next run does.
 */
export async function runMaintenance(
  pool: pg.Pool,
  cache: CacheGuard | null,
  opts: MaintenanceOptions,
): Promise<MaintenanceResult> {
  const budget = opts.timeBudgetMs ?? 60_000;
  const deadline = Date.now() + budget;
  // The prunes get half of the run at most, the outbox walk a quarter: a backlog (the old events still queued
  // after a long Kafka outage, millions of rows past retention after an upgrade) must not leave the retention
  // purge of idle sessions no time; what they leave, the next run prunes.
  const batch = { batch: opts.pruneBatch ?? 5000, deadline: Math.min(deadline, Date.now() + budget / 2) };
  const outboxPruned = await pruneOutbox(pool, opts.outboxRetentionHours, {
    ...batch,
    deadline: Math.min(batch.deadline, Date.now() + budget / 4),
  });
  const idempotencyExpired = await prune(pool, "idempotency", undefined, batch);
  const consumedEventsPruned = await prune(pool, "consumedEvents", opts.consumedEventsRetentionHours, batch);
  const erasedActivityPruned = await prune(pool, "erasedActivity", opts.consumedEventsRetentionHours, batch);
  const purge =
    opts.sessionRetentionDays > 0
      ? await purgeIdleSessions(pool, cache, opts.sessionRetentionDays, opts.purgeBatch ?? 500, deadline)
      : { purged: 0, failed: 0 };
  const cacheInvalidationsDrained = cache ? await cache.drainInvalidations().catch(() => false) : true;
  return {
    outboxPruned,
    idempotencyExpired,
    consumedEventsPruned,
    erasedActivityPruned,
    sessionsPurged: purge.purged,
    sessionsFailed: purge.failed,
    cacheInvalidationsDrained,
  };
}

/** eraseSession with its chat.session.erased event, stamped now: the purge's and the operator's erase. */
const eraseNow = (pool: pg.Pool, id: string, idleDays?: number) =>
  eraseSession(
    pool,
    id,
    chatEvent("chat.session.erased", id, new Date().toISOString(), { session_id: id }),
    idleDays,
  );

/**
 * Erases sessions idle past retention, oldest first, a batch at a time until none is left or the deadline. Each
 * erase tests idleness again (a session used since the select stays), and one that fails (its row locked by a
 * request, a timeout) is skipped for the rest of the run instead of ending it: the run still drains the cache
 * invalidations, and the sessions after it are still purged.
 */
async function purgeIdleSessions(
  pool: pg.Pool,
  cache: CacheGuard | null,
  days: number,
  batch: number,
  deadline: number,
): Promise<{ purged: number; failed: number }> {
  const skipped: string[] = [];
  let purged = 0;
  while (Date.now() < deadline) {
    const idle = await pool.query({
      name: "purge_idle_sessions",
      text: `SELECT session_id FROM sessions
              WHERE updated_at < now() - make_interval(days => $1) AND session_id <> ALL($3::uuid[])
              ORDER BY updated_at LIMIT $2`,
      values: [days, batch, skipped],
    });
    const ids = (idle.rows as { session_id: string }[]).map((r) => r.session_id);
    for (const id of ids) {
      if (Date.now() >= deadline) break;
      try {
        if (await eraseNow(pool, id, days)) {
          purged++;
          await cache?.afterErase(id);
        }
      } catch {
        skipped.push(id);
      }
    }
    if (ids.length < batch) break;
  }
  return { purged, failed: skipped.length };
}

export interface EraseSessionsResult {
  erased: number;
  /**
   * Already gone: nothing to erase (their cache entries are tombstoned all the same); also one whose erase's COMMIT
   * went unanswered and which is gone after it (eraseSession checks), whoever erased it.
   */
  absent: number;
  /** Erases that failed (a lock timeout, a lost connection) or were not reached in time: invoke again with these. */
  failed: string[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The session ids of an operator's `{"eraseSessions": [...]}` invoke, in lower case; undefined for any other
 * event (the hourly schedule's). A list with anything but UUIDs is refused whole.
 */
export function eraseRequest(event: unknown): string[] | undefined {
  const ids = (event as { eraseSessions?: unknown } | null)?.eraseSessions;
  if (ids === undefined) return undefined;
  if (!Array.isArray(ids) || ids.length > 1000)
    throw new Error("eraseSessions must be a list of at most 1000 session ids");
  const bad = ids.find((id) => typeof id !== "string" || !UUID.test(id.toLowerCase()));
  if (bad !== undefined) throw new Error(`eraseSessions: not a session id: ${JSON.stringify(bad)}`);
  return (ids as string[]).map((id) => id.toLowerCase());
}

/**
 * Erases the given sessions now, whatever their age, as their users' DELETE /sessions/{id} does. After a database
 * restore, the erasures made since the restore point are undone (the rows are back, their tombstones in Redis
 * expire within the TTL): the runbook in docs/deploy.md applies them again with the ids session-erase logged since
 * that point, and those this erase logged (the maintenance function's `session erased` lines), for which no one
 * else has a token-free way in.
 */
export async function eraseSessions(
  pool: pg.Pool,
  cache: CacheGuard | null,
  ids: readonly string[],
  deadline = Number.POSITIVE_INFINITY,
): Promise<EraseSessionsResult> {
  const result: EraseSessionsResult = { erased: 0, absent: 0, failed: [] };
  for (const id of ids) {
    if (Date.now() >= deadline) {
      result.failed.push(id);
      continue;
    }
    try {
      if (await eraseNow(pool, id)) result.erased++;
      else result.absent++;
      await cache?.afterErase(id);
    } catch {
      result.failed.push(id);
    }
  }
  return result;
}
