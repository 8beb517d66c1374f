import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseConfig } from "#chat/config.ts";
import { DeadlineBoundClient } from "#chat/db/deadline-bounds.ts";
import { buildPool, queryTimeoutMs } from "#chat/db/pool.ts";
import { isUnanswered } from "#chat/db/pooled-client.ts";
import { withTransaction } from "#chat/db/transaction.ts";
import { runInRequest } from "#chat/request-context.ts";
import { ANSWER_MARGIN_MS, DeadlineExceeded, withRequestDeadline } from "#chat/request-deadline.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * A request's statements end by its deadline (bug 211), not only at the pool's query bound (DB_STATEMENT_TIMEOUT_MS
 * + 1 s): with less time left than that bound, a statement Postgres is slow to answer ends when the time is up, as
 * pg's "Query read timeout" (unanswered: it may have committed). Each statement here sleeps 3 s, well inside the
 * pool's 6 s bound, so a statement not cut to the deadline succeeds.
 */
let db: TestDatabase;
let pool: pg.Pool;
const cfg = parseConfig({});

beforeAll(async () => {
  db = await createTestDatabase(2);
  pool = buildPool(db.url, cfg);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

describe("a statement of a request with less time left than the pool's query bound", () => {
  it.each([
    ["as text", () => pool.query("SELECT pg_sleep(3)")],
    ["as a query config with values", () => pool.query({ text: "SELECT pg_sleep($1)", values: [3] })],
  ])("ends at the request's deadline (%s), unanswered", async (_form, run) => {
    expect(queryTimeoutMs(cfg)).toBeGreaterThan(3000);
    await pool.query("SELECT 1"); // a connection ready, so the checkout waits for nothing
    const err = await withRequestDeadline(ANSWER_MARGIN_MS + 300, run).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe("Query read timeout");
    expect(isUnanswered(err)).toBe(true);
  });

  it("ends with under a millisecond left too, not at the pool's bound (pg reads a query_timeout of 0 as none)", async () => {
    const client = new DeadlineBoundClient({ connectionString: db.url, query_timeout: queryTimeoutMs(cfg) });
    await client.connect();
    const now = Date.now();
    const clock = vi.spyOn(Date, "now").mockReturnValue(now);
    try {
      const err = await runInRequest({ deadline: now + 0.5 }, () => client.query("SELECT pg_sleep(3)")).catch(
        (e: unknown) => e,
      );
      expect((err as Error).message).toBe("Query read timeout");
    } finally {
      clock.mockRestore();
      await client.end().catch(() => undefined);
    }
  });

  // Its COMMIT refused unsent, the transaction cannot have committed: a plain 503 ("retry shortly"), not one that
  // says the change may have been made.
  it("a transaction whose COMMIT the deadline refused is known not to have committed", async () => {
    await pool.query("SELECT 1");
    const err = await withRequestDeadline(ANSWER_MARGIN_MS + 200, () =>
      withTransaction(pool, async (client) => {
        await client.query("SELECT 1");
        await new Promise((resolve) => setTimeout(resolve, 400));
      }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineExceeded);
    expect(isUnanswered(err)).toBe(false);
  });
});
