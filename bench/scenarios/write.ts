import { randomUUID } from "node:crypto";
import { type LoopResult, mergeRounds } from "../lib/closed-loop.ts";
import type { BenchContext } from "../lib/context.ts";
import { WORKERS } from "../lib/context.ts";
import { analyze, checkpoint } from "../lib/db.ts";
import { httpLoad } from "../lib/http-load.ts";
import type { CounterReport, ExplainSummary } from "../lib/instrument.ts";
import { type CpuPerOp, CpuTally, tallyRound } from "../lib/process-cpu.ts";
import { type BenchSession, contentFor, SessionRotation } from "../lib/sessions.ts";
import { startWorker, type Worker } from "../lib/worker-rpc.ts";

/**
 * The write path: the raw limit path (1 SQL statement + 1 Redis pipeline) at c = 1 and 16, next to
 * POST /messages/post over HTTP through the local runner and called directly, at c = 1, 16, 64.
 */
export interface WriteParams {
  rawLevels: number[];
  apiLevels: number[];
  durationMs: number;
  directDurationMs: number;
  warmupMs: number;
  maxOps: number;
  postsPerSession: number;
  diagnosticsPosts: number;
  /** Each level's time is split into this many interleaved rounds per path. */
  rounds: number;
}

export const writeParams = (smoke: boolean): WriteParams =>
  smoke
    ? {
        rawLevels: [1, 16],
        apiLevels: [1, 16, 64],
        durationMs: 250,
        directDurationMs: 200,
        warmupMs: 50,
        maxOps: 400,
        postsPerSession: 25,
        diagnosticsPosts: 20,
        rounds: 1,
      }
    : {
        rawLevels: [1, 16],
        apiLevels: [1, 16, 64],
        durationMs: 8000,
        directDurationMs: 6000,
        warmupMs: 2000,
        maxOps: 60_000,
        postsPerSession: 25,
        diagnosticsPosts: 300,
        rounds: 4,
      };

type Run = LoopResult & {
  sessionsUsed?: number;
  sessionsReused?: number;
  counters?: CounterReport;
  /** The requests `counters` cover: one round's, warm-up included. */
  counterOps?: number;
};

export interface WriteResults {
  params: WriteParams;
  raw: Record<string, Run>;
  http: Record<string, Run & { cacheTrusted: boolean | null; clientCpuMsPerRequest?: number }>;
  direct: Record<string, Run & { cacheTrusted: boolean | null }>;
  /**
   * ms of CPU per request by process role (/proc), per path and level: rounds after the first (which has the
   * warm-up), or the one round of a smoke run with its warm-up. Older files: none.
   */
  cpu?: Record<"raw" | "http" | "direct", Record<string, CpuPerOp | undefined>>;
  /** EXPLAIN ANALYZE of the write statement by name (product and raw), from a short c=1 pass; older files: none. */
  explain?: Record<string, ExplainSummary>;
  /** Statements and commands per POST, from a fixed-count pass over HTTP after the timed runs. */
  perRequest: Record<
    string,
    {
      requests: number;
      pg: Record<string, number>;
      redis: Record<string, number>;
      pgTotal: number;
      redisTotal: number;
      timings: CounterReport["timings"];
    }
  >;
}

const perOp = (c: CounterReport, n: number) => ({
  requests: n,
  pgTotal: Math.round((c.pgTotal / n) * 100) / 100,
  redisTotal: Math.round((c.redisTotal / n) * 100) / 100,
  pg: Object.fromEntries(Object.entries(c.pg).map(([k, v]) => [k, Math.round((v / n) * 100) / 100])),
  redis: Object.fromEntries(Object.entries(c.redis).map(([k, v]) => [k, Math.round((v / n) * 100) / 100])),
  timings: c.timings,
});

/**
 * The load generator's CPU per request over the rounds after the first (as the /proc tallies: no warm-up, JIT or
 * new connections), weighted by each round's requests; the first round alone when it is the only one.
 */
function clientCpuOverRounds(parts: (LoopResult & { clientCpuMsPerRequest?: number })[]): number | undefined {
  const rounds = parts.length > 1 ? parts.slice(1) : parts;
  const n = rounds.reduce((a, r) => a + r.n, 0);
  if (n === 0 || rounds.some((r) => r.clientCpuMsPerRequest === undefined)) return undefined;
  const ms = rounds.reduce((a, r) => a + (r.clientCpuMsPerRequest ?? 0) * r.n, 0);
  return Math.round((ms / n) * 1000) / 1000;
}

export async function writeBench(ctx: BenchContext): Promise<WriteResults> {
  const p = writeParams(ctx.smoke);
  const rawDb = await ctx.dbs.create("write_raw");
  const apiDb = await ctx.dbs.create("write_api");
  const workers: Worker[] = [];
  try {
    const raw = await startWorker("raw", WORKERS.raw, {
      env: ctx.env({ DATABASE_URL: rawDb.url, REDIS_URL: ctx.redisUrl }),
      execArgv: ctx.workerExecArgv,
    });
    workers.push(raw);
    const api = await startWorker("api", WORKERS.api, {
      env: ctx.env({ DATABASE_URL: apiDb.url, REDIS_URL: ctx.redisUrl }),
      execArgv: ctx.workerExecArgv,
    });
    workers.push(api);
    const { url } = await api.call<{ url: string }>("start");

    const results: WriteResults = {
      params: p,
      raw: {},
      http: {},
      direct: {},
      perRequest: {},
      cpu: { raw: {}, http: {}, direct: {} },
    };
    const loop = (c: number, durationMs: number) => ({
      concurrency: c,
      durationMs,
      maxOps: p.maxOps,
      warmupMs: p.warmupMs,
      postsPerSession: p.postsPerSession,
    });
    // Raw sessions are cheap (bulk SQL): make plenty; API sessions are sized from the raw rate (an upper bound).
    const rawPerLevel = ctx.smoke ? 200 : 4000;
    await raw.call("setup", { sessions: rawPerLevel * p.rawLevels.length });
    let rawFrom = 0;
    let rawRate = 0;
    const sessionsFor = async (c: number, durationMs: number) => {
      const expected = (Math.max(rawRate, 100) * 1.15 * (durationMs + p.warmupMs)) / 1000;
      const n = Math.min(Math.ceil(Math.min(expected, p.maxOps * 1.2) / p.postsPerSession) + c, 6000);
      const sessions = await api.call<BenchSession[]>(
        "createSessions",
        { n: Math.max(n, c), concurrency: 8 },
        300_000,
      );
      await analyze(apiDb.pool);
      return sessions;
    };
    await vacuum(rawDb.pool, apiDb.pool);
    const post = (s: BenchSession, seq: number) => ({
      method: "POST" as const,
      path: "/messages/post",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${s.token}`,
        "idempotency-key": randomUUID(),
      },
      body: JSON.stringify({ session_id: s.id, content: contentFor(seq) }),
    });

    // Per level: raw, HTTP and direct in interleaved rounds, so the machine's other load hits all three alike.
    for (const c of p.apiLevels) {
      const hasRaw = p.rawLevels.includes(c);
      const rawParts: Run[] = [];
      const httpParts: (Run & { cacheTrusted: boolean | null })[] = [];
      const directParts: (Run & { cacheTrusted: boolean | null })[] = [];
      const part = (ms: number, round: number) => ({
        ...loop(c, ms / p.rounds),
        warmupMs: round === 0 ? p.warmupMs : 0,
        keepSamples: true,
      });
      let httpRotation: SessionRotation | undefined;
      let directSessions: BenchSession[] = [];
      let rawLevelFrom = rawFrom;
      const cpu = { raw: new CpuTally(), http: new CpuTally(), direct: new CpuTally() };
      ctx.log(
        `write: c=${c}: ${hasRaw ? "raw limit path, " : ""}POST over HTTP, handler direct; ${p.rounds} interleaved rounds`,
      );
      for (let round = 0; round < p.rounds; round++) {
        await checkpoint();
        const measureCpu = tallyRound(round, p.rounds);
        if (hasRaw) {
          const r = await cpu.raw.measure(
            raw.pid,
            () => raw.call<Run>("write", { ...part(p.durationMs, round), from: rawLevelFrom }),
            measureCpu,
          );
          rawLevelFrom += r.sessionsUsed ?? 0;
          rawParts.push(r);
          if (round === 0) rawRate = r.opsPerSec;
        }
        if (!httpRotation) {
          const httpSessions = await sessionsFor(c, p.durationMs);
          directSessions = await sessionsFor(c, p.directDurationMs);
          httpRotation = new SessionRotation(httpSessions, c, p.postsPerSession);
        }
        const rotation = httpRotation;
        await api.call("resetCounters");
        const h = await cpu.http.measure(
          api.pid,
          () => httpLoad(url, part(p.durationMs, round), (w, seq) => post(rotation.next(w), seq)),
          measureCpu,
        );
        const cache = await api.call<{ trusted: boolean | null }>("cacheState");
        const counters = await api.call<CounterReport>("counters");
        httpParts.push({
          ...h,
          counters,
          sessionsUsed: rotation.consumed,
          sessionsReused: rotation.reused,
          cacheTrusted: cache.trusted,
        });
        const d = await cpu.direct.measure(
          api.pid,
          () =>
            api.call<Run & { cacheTrusted: boolean | null }>(
              "directPost",
              { ...part(p.directDurationMs, round), sessions: directSessions },
              600_000,
            ),
          measureCpu,
        );
        directSessions = directSessions.slice(
          Math.min(d.sessionsUsed ?? 0, Math.max(0, directSessions.length - c)),
        );
        directParts.push(d);
      }
      rawFrom += rawPerLevel;
      for (const path of ["raw", "http", "direct"] as const) {
        const perOp = cpu[path].perOp();
        if (perOp && results.cpu) results.cpu[path][c] = perOp;
      }
      // The last round's counters (each part resets them), with the number of requests they cover.
      const lastCounters = <T extends Run>(parts: T[]) => {
        const last = parts[parts.length - 1];
        return { counters: last?.counters, counterOps: last && (last.warmupOps ?? 0) + last.n + last.errors };
      };
      if (hasRaw) {
        const r = mergeRounds(rawParts);
        results.raw[c] = { ...r, ...lastCounters(rawParts) };
        ctx.log(`  raw c=${c}: p50 ${r.p50} ms, p99 ${r.p99} ms, ${r.opsPerSec} ops/s`);
      }
      const h = mergeRounds(httpParts);
      results.http[c] = {
        ...h,
        clientCpuMsPerRequest: clientCpuOverRounds(httpParts),
        ...lastCounters(httpParts),
        cacheTrusted: httpParts.every((x) => x.cacheTrusted !== false),
      };
      ctx.log(`  http c=${c}: p50 ${h.p50} ms, p99 ${h.p99} ms, ${h.opsPerSec} req/s, non-2xx ${h.non2xx}`);
      const d = mergeRounds(directParts);
      results.direct[c] = {
        ...d,
        ...lastCounters(directParts),
        cacheTrusted: directParts.every((x) => x.cacheTrusted !== false),
      };
      ctx.log(`  direct c=${c}: p50 ${d.p50} ms, p99 ${d.p99} ms, ${d.opsPerSec} ops/s, non-2xx ${d.non2xx}`);
    }

    // Round trips per request: a fixed number of posts over HTTP, counted in the runner's process.
    for (const c of [1, 16]) {
      const n = c === 1 ? p.diagnosticsPosts : p.diagnosticsPosts * 4;
      const sessions = await api.call<BenchSession[]>("createSessions", {
        n: Math.ceil(n / p.postsPerSession) + c,
        concurrency: 8,
      });
      await analyze(apiDb.pool);
      const rotation = new SessionRotation(sessions, c, p.postsPerSession);
      await api.call("resetCounters");
      const d = await httpLoad(url, { concurrency: c, durationMs: 60_000, maxOps: n }, (w, seq) =>
        post(rotation.next(w), seq),
      );
      const counters = await api.call<CounterReport>("counters");
      results.perRequest[`http_c${c}`] = perOp(counters, d.n + d.errors);
    }
    // In Postgres itself: EXPLAIN ANALYZE of the write statement, the product's against the raw path's, c=1,
    // in alternating rounds after a checkpoint (autovacuum and the checkpointer follow the loads above).
    const explainRounds = 4;
    const perRound = ctx.smoke ? 2 : 10;
    const fresh = await api.call<BenchSession[]>("createSessions", {
      n: Math.ceil((explainRounds * perRound) / p.postsPerSession) + 1,
      concurrency: 4,
    });
    const explainRotation = new SessionRotation(fresh, 1, p.postsPerSession);
    const rawTotal = await raw.call<number>("setup", { sessions: explainRounds * perRound });
    await Promise.all([analyze(apiDb.pool), analyze(rawDb.pool)]);
    await checkpoint();
    await Promise.all([api.call("explainNext", 1e9), raw.call("explainNext", 1e9)]);
    for (let round = 0; round < explainRounds; round++) {
      await raw.call<Run>("write", {
        ...loop(1, 60_000),
        maxOps: perRound,
        warmupMs: 0,
        from: rawTotal - (explainRounds - round) * perRound,
      });
      await httpLoad(url, { concurrency: 1, durationMs: 60_000, maxOps: perRound }, (w, seq) =>
        post(explainRotation.next(w), seq),
      );
    }
    results.explain = {
      ...(await raw.call<Record<string, ExplainSummary>>("drainExplains")),
      ...(await api.call<Record<string, ExplainSummary>>("drainExplains")),
    };

    const rawCounters = results.raw[1]?.counters;
    // The raw counters cover warm-up and measured operations: divide by the statements actually run.
    if (rawCounters) results.perRequest.raw_c1 = perOp(rawCounters, rawCounters.pg.raw_post ?? 1);
    return results;
  } finally {
    for (const w of workers) await w.close();
    ctx.dbs.release(rawDb);
    ctx.dbs.release(apiDb);
  }
}

async function vacuum(...pools: { query: (sql: string) => Promise<unknown> }[]) {
  for (const pool of pools) await pool.query("VACUUM ANALYZE");
}
