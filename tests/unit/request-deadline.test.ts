import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it, vi } from "vitest";
import { parseConfig } from "#chat/config.ts";
import { DeadlineBoundClient } from "#chat/db/deadline-bounds.ts";
import { buildPool } from "#chat/db/pool.ts";
import { isUnanswered, withClient } from "#chat/db/pooled-client.ts";
import {
  ANSWER_MARGIN_MS,
  DeadlineExceeded,
  timeLeftMs,
  withRequestDeadline,
} from "#chat/request-deadline.ts";
import { isBackendUnavailable, unavailableReason } from "../../functions/http/service-errors.ts";

/** A request's deadline (bug 211): the Lambda context's remaining time less a margin to answer in, per invocation. */
describe("the request deadline", () => {
  it("is each invocation's own, when invocations of one function run side by side, and none outside them", async () => {
    const seen = await Promise.all(
      [10_000, 2_000].map((remaining) =>
        withRequestDeadline(remaining, async () => {
          await sleep(5);
          const left = timeLeftMs() ?? Number.NaN;
          return Math.round((remaining - ANSWER_MARGIN_MS - left) / 1000);
        }),
      ),
    );
    expect(seen).toEqual([0, 0]); // each within a second of its own deadline
    expect(timeLeftMs()).toBeUndefined();
  });

  it("refuses a statement with no time left unsent: a 503 whose change cannot have been made", async () => {
    const client = new DeadlineBoundClient({ host: "127.0.0.1", port: 1 }); // never connected: nothing is sent
    const err = await withRequestDeadline(ANSWER_MARGIN_MS - 1, () => client.query("SELECT 1")).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DeadlineExceeded);
    expect(isUnanswered(err)).toBe(false);
    expect(isBackendUnavailable(err)).toBe(true);
    expect(unavailableReason(err)).toBe("request_deadline");
  });

  it("refuses a checkout with no time left, and shortens one's wait to the time left", async () => {
    const cfg = parseConfig({ DB_CONNECT_TIMEOUT_MS: "2000" });
    const pool = buildPool("postgres://u@127.0.0.1:1/none", cfg);
    const options = (pool as unknown as { options: { connectionTimeoutMillis: number } }).options;
    try {
      expect(options.connectionTimeoutMillis).toBe(2000);
      const wait = withRequestDeadline(ANSWER_MARGIN_MS + 300, () => options.connectionTimeoutMillis);
      expect(wait).toBeGreaterThan(0);
      expect(wait).toBeLessThanOrEqual(300);
      const err = await withRequestDeadline(ANSWER_MARGIN_MS - 1, () =>
        withClient(pool, async () => "ran"),
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DeadlineExceeded);
      expect(pool.totalCount).toBe(0); // no connection was even tried
    } finally {
      await pool.end();
    }
  });

  // At the deadline exactly (left = 0), a statement would get a query_timeout of 0, which pg reads as the pool's
  // bound, and a checkout a wait of 0, which pg-pool reads as for ever: both are refused unsent.
  it("refuses a statement and a checkout at the deadline itself, and never waits for ever on a checkout", async () => {
    const cfg = parseConfig({ DB_CONNECT_TIMEOUT_MS: "2000" });
    const pool = buildPool("postgres://u@127.0.0.1:1/none", cfg);
    const options = (pool as unknown as { options: { connectionTimeoutMillis: number } }).options;
    const client = new DeadlineBoundClient({ host: "127.0.0.1", port: 1 }); // never connected: nothing is sent
    const clock = vi.spyOn(Date, "now").mockReturnValue(Date.now());
    try {
      const atDeadline = <T>(fn: () => Promise<T>) =>
        withRequestDeadline(ANSWER_MARGIN_MS, fn).catch((e: unknown) => e);
      expect(await atDeadline(() => client.query("SELECT 1"))).toBeInstanceOf(DeadlineExceeded);
      expect(await atDeadline(() => withClient(pool, async () => "ran"))).toBeInstanceOf(DeadlineExceeded);
      expect(pool.totalCount).toBe(0);
      expect(withRequestDeadline(ANSWER_MARGIN_MS - 100, () => options.connectionTimeoutMillis)).toBe(1);
    } finally {
      clock.mockRestore();
      await pool.end();
    }
  }, 2000);
});
