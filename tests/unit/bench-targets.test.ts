import { describe, expect, it } from "vitest";
import { type BenchResults, evaluateTargets } from "../../bench/lib/targets.ts";

/** A loop result as the benchmarks record it: `n` answers, of which `non2xx` were not 2xx. */
const run = (p50: number, opsPerSec: number, more: Record<string, unknown> = {}) => ({
  n: 1000,
  p50,
  p90: p50,
  p99: p50,
  max: p50,
  mean: p50,
  elapsedMs: 1000,
  opsPerSec,
  concurrency: 1,
  statuses: { 201: 1000 },
  non2xx: 0,
  errors: 0,
  errorSamples: [],
  ...more,
});

const write = (http: ReturnType<typeof run>) =>
  ({
    write: {
      raw: { 1: run(1, 1000), 16: run(8, 2000) },
      http: { 1: http, 16: run(10, 1500) },
      direct: { 1: run(http.p50 - 0.2, 1200) },
    },
  }) as unknown as BenchResults;

const history = (hitHeaders: Record<string, number>) =>
  ({
    history: {
      hit: {
        1: run(0.5, 2000, { headerCounts: hitHeaders }),
        16: run(2, 9000, { headerCounts: hitHeaders }),
      },
      miss: {
        1: run(1.5, 700, { headerCounts: { none: 1000 } }),
        16: run(6, 2000, { headerCounts: { none: 1000 } }),
      },
      rawRedisGet: { 1: run(0.1, 9000) },
      bareHttp: { 1: run(0.15, 8000, { headerCounts: {} }) },
    },
  }) as unknown as BenchResults;

const byId = (r: BenchResults) => Object.fromEntries(evaluateTargets(r).map((t) => [t.id, t]));

describe("bench targets", () => {
  it("judges clean runs by their ratios", () => {
    const w = byId(write(run(1.2, 900)));
    expect(w.post_p50_c1).toMatchObject({ value: 1.2, pass: true });
    expect(w.post_rps_c16).toMatchObject({ value: 0.75, pass: true });
    expect(w.runner_overhead).toMatchObject({ value: 0.2, pass: true });
    const h = byId(history({ hit: 1000 }));
    expect(h.history_cache_rps).toMatchObject({ value: 4.5, pass: true });
    expect(h.history_hit_p50).toMatchObject({ value: 2, pass: true });
  });

  it("does not pass a POST figure made of error answers", () => {
    // 429s or 503s answer faster than a stored turn: their p50 would flatter the ratio
    const w = byId(write(run(0.3, 3000, { statuses: { 429: 1000 }, non2xx: 1000 })));
    for (const id of ["post_p50_c1", "runner_overhead"]) {
      expect(w[id]?.pass).toBe(false);
      expect(w[id]?.invalid).toMatch(/not 2xx/);
    }
  });

  it("does not pass a POST figure measured with the cache turned off", () => {
    // without its Redis writes a POST does less than the raw path it is divided by
    const w = byId(write(run(1.2, 900, { cacheTrusted: false })));
    expect(w.post_p50_c1?.pass).toBe(false);
    expect(w.post_p50_c1?.invalid).toMatch(/cache was off/);
  });

  it("does not pass a cache-hit figure whose answers were misses", () => {
    const h = byId(history({ hit: 500, miss: 500 }));
    for (const id of ["history_cache_rps", "history_hit_p50"]) {
      expect(h[id]?.pass).toBe(false);
      expect(h[id]?.invalid).toMatch(/not cache hits/);
    }
  });

  it("tolerates a stray answer (under 1 %) and says so", () => {
    const h = byId(history({ hit: 995, miss: 5 }));
    expect(h.history_cache_rps).toMatchObject({ pass: true });
    expect(h.history_cache_rps?.invalid).toBeUndefined();
  });
});
