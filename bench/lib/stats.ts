/** Latency samples (ms) → the figures every benchmark reports. Percentiles by nearest rank on all samples. */
export interface LatencySummary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface ThroughputSummary extends LatencySummary {
  elapsedMs: number;
  /** Completed operations per second over the measured window. */
  opsPerSec: number;
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function summarize(samples: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    n: sorted.length,
    p50: round(percentile(sorted, 50)),
    p90: round(percentile(sorted, 90)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.length ? (sorted[sorted.length - 1] as number) : Number.NaN),
    mean: round(sorted.length ? sum / sorted.length : Number.NaN),
  };
}

export function throughput(samples: ArrayLike<number>, elapsedMs: number): ThroughputSummary {
  const s = summarize(samples);
  return { ...s, elapsedMs: round(elapsedMs), opsPerSec: round((s.n * 1000) / Math.max(elapsedMs, 1e-9), 1) };
}

export const median = (values: number[]): number => percentile(Float64Array.from(values).sort(), 50);

export function round(v: number, digits = 3): number {
  if (!Number.isFinite(v)) return v;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
