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

  it("reports Postgres down as down, whatever the rest", async () => {
    const health = await checkHealth({ pool: never, version: "t", timeoutMs: 100 });
    expect(health.status).toBe("down");
    expect(health.checks.redis.status).toBe("disabled");
  });
});
