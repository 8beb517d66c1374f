import type pg from "pg";
import { withTimeout } from "../timeout.ts";

export type CheckStatus = "ok" | "down" | "disabled";
export interface Check {
  status: CheckStatus;
  latency_ms: number | null;
}
export interface Health {
  status: "ok" | "degraded" | "down";
  version: string;
  checks: { postgres: Check; redis: Check; kafka: Check };
}

export interface HealthDeps {
  pool: () => Promise<pg.Pool>;
  /** Absent: Redis is not configured. */
  redisPing?: () => Promise<unknown>;
  /** Absent: Kafka is not configured. */
  kafkaPing?: (timeoutMs: number) => Promise<Check>;
  version: string;
  timeoutMs: number;
}

/**
 * Each backend checked in parallel, each bounded by timeoutMs as a whole (connecting, and for Kafka finding the
 * brokers, included); no writes. Postgres down is "down", anything else "degraded".
 */
export async function checkHealth(deps: HealthDeps): Promise<Health> {
  const { kafkaPing, timeoutMs } = deps;
  const [postgres, redis, kafka] = await Promise.all([
    timed(async () => {
      const pool = await deps.pool();
      await pool.query({ text: "SELECT 1", query_timeout: timeoutMs } as pg.QueryConfig);
    }, timeoutMs),
    deps.redisPing ? timed(deps.redisPing, timeoutMs) : disabled(),
    kafkaPing
      ? withTimeout(kafkaPing(timeoutMs), timeoutMs, () => new Error("timeout")).catch(() => ({
          status: "down" as const,
          latency_ms: null,
        }))
      : disabled(),
  ]);
  const status =
    postgres.status !== "ok"
      ? "down"
      : redis.status === "down" || kafka.status === "down"
        ? "degraded"
        : "ok";
  return { status, version: deps.version, checks: { postgres, redis, kafka } };
}

const disabled = async (): Promise<Check> => ({ status: "disabled", latency_ms: null });

async function timed(probe: () => Promise<unknown>, timeoutMs: number): Promise<Check> {
  const started = performance.now();
  try {
    await withTimeout(probe(), timeoutMs, () => new Error("timeout"));
    return { status: "ok", latency_ms: Math.round((performance.now() - started) * 100) / 100 };
  } catch {
    return { status: "down", latency_ms: null };
  }
}
