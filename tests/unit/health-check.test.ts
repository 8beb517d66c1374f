import type pg from "pg";
import { describe, expect, it, vi } from "vitest";
import { type Check, checkHealth } from "../../layers/chat/health/health-check.ts";

/** A pool whose SELECT 1 answers at once. */
const pool = async () => ({ query: async () => ({ rows: [{}] }) }) as unknown as pg.Pool;
const never = () => new Promise<never>(() => {});

describe("checkHealth", () => {
  it("bounds each backend's check as a whole: a Kafka probe stuck before its own ping is down in time", async () => {
    vi.useFakeTimers();
    try {
      let settled = false;
      const result = checkHealth({
        pool,
        redisPing: async () => "PONG",
        // e.g. still looking up the MSK brokers or reading a secret, before its ping's own bound starts
        kafkaPing: never as (timeoutMs: number) => Promise<Check>,
        version: "t",
        timeoutMs: 200,
      }).finally(() => {
        settled = true;
      });
      await vi.advanceTimersByTimeAsync(199);
      expect(settled).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      const health = await result;
      expect(health.status).toBe("degraded");
      expect(health.checks.kafka).toEqual({ status: "down", latency_ms: null });
      expect(health.checks.postgres.status).toBe("ok");
      expect(health.checks.redis.status).toBe("ok");
    } finally {
      vi.useRealTimers();
    }
  });

  it("bounds the Postgres check too: a pool that never connects is down at timeoutMs, not later", async () => {
    vi.useFakeTimers();
    try {
      let settled = false;
      const result = checkHealth({ pool: never, version: "t", timeoutMs: 300 }).finally(() => {
        settled = true;
      });
      await vi.advanceTimersByTimeAsync(299);
      expect(settled).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(settled).toBe(true);
      expect((await result).checks.postgres).toEqual({ status: "down", latency_ms: null });
    } finally {
      vi.useRealTimers();
    }
  });

  it("reports a failing SELECT 1 down, and bounds it server-side too so the connection is not held", async () => {
    const queries: unknown[] = [];
    const failing = async () =>
      ({
        query: async (q: unknown) => {
          queries.push(q);
          throw new Error("connection terminated");
        },
      }) as unknown as pg.Pool;
    const health = await checkHealth({ pool: failing, version: "t", timeoutMs: 250 });
    expect(health.status).toBe("down");
    expect(health.checks.postgres).toEqual({ status: "down", latency_ms: null });
    // query_timeout: the driver gives up on the query (and its connection) at the same bound
    expect(queries).toEqual([expect.objectContaining({ text: "SELECT 1", query_timeout: 250 })]);
  });

  it("reports Redis down as degraded, with Postgres ok and Kafka disabled", async () => {
    const health = await checkHealth({
      pool,
      redisPing: () => Promise.reject(new Error("ECONNREFUSED")),
      version: "v9",
      timeoutMs: 100,
    });
    expect(health).toEqual({
      status: "degraded",
      version: "v9",
      checks: {
        postgres: { status: "ok", latency_ms: expect.any(Number) },
        redis: { status: "down", latency_ms: null },
        kafka: { status: "disabled", latency_ms: null },
      },
    });
  });

  it("gives the Kafka probe the same bound for its own ping, and reports what it answers", async () => {
    const seen: number[] = [];
    const health = await checkHealth({
      pool,
      kafkaPing: async (ms) => {
        seen.push(ms);
        return { status: "ok", latency_ms: 3 };
      },
      version: "t",
      timeoutMs: 150,
    });
    expect(seen).toEqual([150]);
    expect(health.status).toBe("ok");
    expect(health.checks.kafka).toEqual({ status: "ok", latency_ms: 3 });
  });

  it("reports Postgres down as down, whatever the rest", async () => {
    const health = await checkHealth({ pool: never, version: "t", timeoutMs: 100 });
    expect(health.status).toBe("down");
    expect(health.checks.redis.status).toBe("disabled");
  });
});
