import type pg from "pg";

/**
 * Resolves once `count` statements on `pool`'s database that start with `queryStart` (any, if empty) wait for a
 * lock: the moment a test can let the lock's holder commit and know the waiters saw the old state first.
 */
export async function untilWaitingForLock(pool: pg.Pool, queryStart = "", count = 1): Promise<void> {
  for (let i = 0; i <= 300; i++) {
    const r = await pool.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE wait_event_type = 'Lock' AND datname = current_database() AND query LIKE $1`,
      [`${queryStart}%`],
    );
    if (r.rows[0].n >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(
    `fewer than ${count} statement(s)${queryStart ? ` starting "${queryStart}"` : ""} waited for a lock`,
  );
}
