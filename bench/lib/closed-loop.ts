import { type ThroughputSummary, throughput } from "./stats.ts";

/**
 * A closed-loop load: `concurrency` workers, each starting its next operation as soon as the previous one
 * finishes. Bounded twice: it stops at `durationMs` or after `maxOps` operations, whichever comes first.
 */
export interface LoopOptions {
  concurrency: number;
  durationMs: number;
  maxOps: number;
  /** Unmeasured operations first (same bounds logic), e.g. to warm pools and JIT. */
  warmupMs?: number;
  warmupMaxOps?: number;
  /** Called between the warm-up and the measured run. */
  onMeasureStart?: () => void;
  /** Return the latency samples too (for merging interleaved rounds). */
  keepSamples?: boolean;
}

/** One operation; returns an HTTP status (or undefined when there is none). Throwing counts an error. */
export type Operation = (worker: number, seq: number) => Promise<number | undefined>;

export interface LoopResult extends ThroughputSummary {
  concurrency: number;
  /** HTTP status → count, when the operation reports statuses. */
  statuses: Record<string, number>;
  non2xx: number;
  errors: number;
  /** A few distinct error messages, for the report. */
  errorSamples: string[];
  /** Latencies (ms, µs precision) when asked for with keepSamples. */
  samples?: number[];
  /** Interleaved rounds merged into this result. */
  rounds?: number;
  /** Operations run in the warm-up (completed or failed), before the measured ones. */
  warmupOps?: number;
}

export class BenchmarkCrash extends Error {
  override name = "BenchmarkCrash";
}

async function drive(
  op: Operation,
  concurrency: number,
  durationMs: number,
  maxOps: number,
  record: boolean,
): Promise<
  Omit<LoopResult, keyof ThroughputSummary | "concurrency"> & {
    samples: number[];
    elapsed: number;
    completed: number;
  }
> {
  const samples: number[] = [];
  const statuses: Record<string, number> = {};
  const errorSamples = new Set<string>();
  let errors = 0;
  let non2xx = 0;
  let completed = 0;
  let started = 0;
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  const worker = async (w: number) => {
    while (started < maxOps && performance.now() < deadline) {
      const seq = started++;
      const s = performance.now();
      try {
        const status = await op(w, seq);
        const ms = performance.now() - s;
        completed++;
        if (record) samples.push(ms);
        if (status !== undefined) {
          statuses[status] = (statuses[status] ?? 0) + 1;
          if (status < 200 || status > 299) non2xx++;
        }
      } catch (err) {
        errors++;
        if (errorSamples.size < 5) errorSamples.add(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  return {
    samples,
    completed,
    elapsed: performance.now() - t0,
    statuses,
    non2xx,
    errors,
    errorSamples: [...errorSamples],
  };
}

export async function runLoop(opts: LoopOptions, op: Operation): Promise<LoopResult> {
  let warmupOps = 0;
  if (opts.warmupMs && opts.warmupMs > 0) {
    const w = await drive(op, opts.concurrency, opts.warmupMs, opts.warmupMaxOps ?? opts.maxOps, false);
    if (w.completed === 0 && w.errors > 0) {
      throw new BenchmarkCrash(`every warm-up operation failed: ${w.errorSamples.join("; ")}`);
    }
    warmupOps = w.completed + w.errors;
  }
  opts.onMeasureStart?.();
  const r = await drive(op, opts.concurrency, opts.durationMs, opts.maxOps, true);
  const ok = r.samples.length;
  if (ok === 0)
    throw new BenchmarkCrash(`no operation completed: ${r.errorSamples.join("; ") || "none ran"}`);
  if (r.errors > ok)
    throw new BenchmarkCrash(`more errors (${r.errors}) than completions: ${r.errorSamples.join("; ")}`);
  return {
    concurrency: opts.concurrency,
    ...throughput(r.samples, r.elapsed),
    statuses: r.statuses,
    non2xx: r.non2xx,
    errors: r.errors,
    errorSamples: r.errorSamples,
    warmupOps,
    ...(opts.keepSamples ? { samples: r.samples.map((v) => Math.round(v * 1000) / 1000) } : {}),
  };
}

/**
 * Merges rounds of the same measurement (interleaved with other paths' rounds, so that whatever else the
 * machine did hit every path alike): all samples together, throughput over the summed measured time.
 */
export function mergeRounds<T extends LoopResult>(parts: T[]): T {
  const first = parts[0];
  if (!first) throw new Error("no rounds to merge");
  const samples = parts.flatMap((p) => p.samples ?? []);
  const elapsed = parts.reduce((a, p) => a + p.elapsedMs, 0);
  const statuses: Record<string, number> = {};
  for (const p of parts)
    for (const [k, v] of Object.entries(p.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  const { samples: _s, ...rest } = first;
  return {
    ...rest,
    ...throughput(samples, elapsed),
    statuses,
    non2xx: parts.reduce((a, p) => a + p.non2xx, 0),
    errors: parts.reduce((a, p) => a + p.errors, 0),
    errorSamples: [...new Set(parts.flatMap((p) => p.errorSamples))].slice(0, 5),
    rounds: parts.length,
  } as T;
}
