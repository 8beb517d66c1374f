import type { ColdResults, Mode } from "../scenarios/cold-start.ts";
import type { HistoryResults } from "../scenarios/history.ts";
import type { KafkaResults } from "../scenarios/kafka.ts";
import type { WriteResults } from "../scenarios/write.ts";
import { round } from "./stats.ts";

export interface TargetResult {
  id: string;
  target: string;
  /** What was measured, against its reference from the same run. */
  measured: string;
  /** measured ÷ reference (or the difference in ms for the runner overhead). */
  value: number;
  limit: string;
  pass: boolean;
  /** Why the figures cannot be judged: a series whose answers were not the ones it claims to time. */
  invalid?: string;
}

export interface BenchResults {
  write?: WriteResults;
  history?: HistoryResults;
  cold?: ColdResults;
  kafka?: KafkaResults;
}

const KB = 1024;
export const BUNDLE_LIMIT_BYTES = 300 * KB;
/** Share of a series' answers that may be other than claimed (a stray 503, a hit turned miss) before it is invalid. */
const STRAY_SHARE = 0.01;

interface Series {
  n: number;
  non2xx: number;
  errors: number;
  headerCounts?: Record<string, number>;
  /** A POST series: false when a round ended with the product's cache turned off (its Redis writes skipped). */
  cacheTrusted?: boolean | null;
}

/**
 * What makes a series unfit to judge: over 1 % of its requests failed or answered other than 2xx (a 429 or 503 is
 * faster than the work it stands for), or, for a cache-hit series, over 1 % of its answers were not hits; a POST
 * series that ended a round with the cache off skipped the Redis writes the raw path makes.
 */
function unfit(label: string, r: Series, hits = false): string | undefined {
  const total = r.n + r.errors;
  const bad = r.non2xx + r.errors;
  if (bad > STRAY_SHARE * total) return `${label}: ${bad} of ${total} answers not 2xx`;
  if (r.cacheTrusted === false) return `${label}: the cache was off at the end of a round`;
  if (hits) {
    const counts = r.headerCounts ?? {};
    const all = Object.values(counts).reduce((a, b) => a + b, 0);
    const missed = all - (counts.hit ?? 0);
    if (missed > STRAY_SHARE * all) return `${label}: ${missed} of ${all} answers not cache hits`;
  }
  return undefined;
}

/** A target over series that cannot be judged is not a PASS, whatever its ratio, and says why. */
function judged(t: TargetResult, ...reasons: (string | undefined)[]): TargetResult {
  const why = reasons.filter((x): x is string => x !== undefined);
  if (!why.length) return t;
  const invalid = why.join("; ");
  return { ...t, measured: `${t.measured} (invalid: ${invalid})`, pass: false, invalid };
}

export function evaluateTargets(r: BenchResults): TargetResult[] {
  const out: TargetResult[] = [];
  const w = r.write;
  if (w) {
    const raw1 = w.raw[1];
    const raw16 = w.raw[16];
    const http1 = w.http[1];
    const http16 = w.http[16];
    const direct1 = w.direct[1];
    if (raw1 && http1) {
      const ratio = round(http1.p50 / raw1.p50, 2);
      out.push(
        judged(
          {
            id: "post_p50_c1",
            target: "POST /messages/post p50 at c=1 ≤ 1.5 × raw limit path p50",
            measured: `${http1.p50} ms vs raw ${raw1.p50} ms`,
            value: ratio,
            limit: "≤ 1.5×",
            pass: ratio <= 1.5,
          },
          unfit("POST c=1", http1),
          unfit("raw c=1", raw1),
        ),
      );
    }
    if (raw16 && http16) {
      const ratio = round(http16.opsPerSec / raw16.opsPerSec, 2);
      out.push(
        judged(
          {
            id: "post_rps_c16",
            target: "POST /messages/post req/s at c=16 ≥ 60 % of raw limit path",
            measured: `${http16.opsPerSec} req/s vs raw ${raw16.opsPerSec} ops/s`,
            value: ratio,
            limit: "≥ 0.60×",
            pass: ratio >= 0.6,
          },
          unfit("POST c=16", http16),
          unfit("raw c=16", raw16),
        ),
      );
    }
    if (http1 && direct1) {
      const diff = round(http1.p50 - direct1.p50, 3);
      out.push(
        judged(
          {
            id: "runner_overhead",
            target: "Runner overhead ≤ 0.5 ms p50 over the direct handler call (c=1)",
            measured: `HTTP ${http1.p50} ms − direct ${direct1.p50} ms`,
            value: diff,
            limit: "≤ 0.5 ms",
            pass: diff <= 0.5,
          },
          unfit("POST c=1", http1),
          unfit("direct c=1", direct1),
        ),
      );
    }
  }
  const h = r.history;
  if (h) {
    const hit16 = h.hit[16];
    const miss16 = h.miss[16];
    const hit1 = h.hit[1];
    const redis1 = h.rawRedisGet[1];
    const http1 = h.bareHttp[1];
    if (hit16 && miss16) {
      const ratio = round(hit16.opsPerSec / miss16.opsPerSec, 2);
      out.push(
        judged(
          {
            id: "history_cache_rps",
            target: "History from cache ≥ 3 × the req/s of uncached (c=16)",
            measured: `${hit16.opsPerSec} vs ${miss16.opsPerSec} req/s`,
            value: ratio,
            limit: "≥ 3×",
            pass: ratio >= 3,
          },
          unfit("hit c=16", hit16, true),
          unfit("miss c=16", miss16),
        ),
      );
    }
    if (hit1 && redis1 && http1) {
      const ref = redis1.p50 + http1.p50;
      const ratio = round(hit1.p50 / ref, 2);
      out.push(
        judged(
          {
            id: "history_hit_p50",
            target: "History cache-hit p50 ≤ 2 × (raw Redis GET + bare HTTP) p50 (c=1)",
            measured: `${hit1.p50} ms vs ${round(ref)} ms (${redis1.p50} + ${http1.p50})`,
            value: ratio,
            limit: "≤ 2×",
            pass: ratio <= 2,
          },
          unfit("hit c=1", hit1, true),
          unfit("raw Redis GET c=1", redis1),
          unfit("bare HTTP c=1", http1),
        ),
      );
    }
  }
  const c = r.cold;
  if (c) {
    for (const mode of Object.keys(c.modes) as Mode[]) {
      const m = c.modes[mode];
      const fns = Object.entries(m.functions);
      const slow = fns.filter(([, f]) => !(f.ratio <= 1.5));
      const worst = fns.reduce((a, b) => (b[1].ratio > a[1].ratio ? b : a), fns[0] as (typeof fns)[number]);
      const tag = mode === c.defaultLayerMode ? `${mode}, infra default` : mode;
      out.push({
        id: `cold_init_${mode}`,
        target: `Each function's cold init ≤ 1.5 × the empty handler's (${tag}; NODE_OPTIONS=${c.deployedNodeOptions || "none"})`,
        measured: `${fns.length - slow.length}/${fns.length} within; worst ${worst?.[0]} ${worst?.[1].initMs} ms vs empty ${m.empty.initMs} ms`,
        value: worst?.[1].ratio ?? Number.NaN,
        limit: "≤ 1.5×",
        pass: slow.length === 0,
      });
      const big = fns.filter(([, f]) => f.bundleBytes > BUNDLE_LIMIT_BYTES);
      const largest = fns.reduce(
        (a, b) => (b[1].bundleBytes > a[1].bundleBytes ? b : a),
        fns[0] as (typeof fns)[number],
      );
      out.push({
        id: `bundle_size_${mode}`,
        target: `Each bundle ≤ 300 KB minified (${tag})`,
        measured: `${fns.length - big.length}/${fns.length} within; largest ${largest?.[0]} ${round((largest?.[1].bundleBytes ?? 0) / KB, 1)} KB`,
        value: round((largest?.[1].bundleBytes ?? 0) / BUNDLE_LIMIT_BYTES, 2),
        limit: "≤ 300 KB",
        pass: big.length === 0,
      });
    }
  }
  const k = r.kafka;
  if (k) {
    // The target is about the product's default producer settings (no compression).
    for (const run of k.relay.filter((r) => (r.compression ?? "none") === "none")) {
      out.push({
        id: `relay_${run.batchSize}`,
        target: `Outbox relay ≥ 20,000 events/s (batch ${run.batchSize})`,
        measured: `${run.eventsPerSec} events/s`,
        value: round(run.eventsPerSec / 20_000, 2),
        limit: "≥ 20,000/s",
        pass: run.eventsPerSec >= 20_000,
      });
    }
  }
  return out;
}
