import { createHash, randomBytes, randomUUID } from "node:crypto";
import { type LoopResult, mergeRounds } from "../lib/closed-loop.ts";
import type { BenchContext } from "../lib/context.ts";
import { WORKERS } from "../lib/context.ts";
import { checkpoint } from "../lib/db.ts";
import { type HttpLoadResult, httpLoad } from "../lib/http-load.ts";
import type { CounterReport } from "../lib/instrument.ts";
import { type CpuPerOp, CpuTally, tallyRound } from "../lib/process-cpu.ts";
import { type BenchSession, USER_MESSAGES } from "../lib/sessions.ts";
import { startWorker, type Worker } from "../lib/worker-rpc.ts";

/**
 * History read: GET /sessions/{id}/messages (one 50-message page of a 51-message session) from a runner
 * with Redis (cache hit) and from a runner without REDIS_URL (every read from Postgres), next to the raw
 * Redis GET of the history entry, the raw SQL SELECT of the page, and a bare node:http server returning the
 * same body (the HTTP floor).
 */
export interface HistoryParams {
  levels: number[];
  sessions: number;
  messagesPerSession: number;
  pageLimit: number;
  durationMs: number;
  rawDurationMs: number;
  warmupMs: number;
  maxOps: number;
  diagnosticsReads: number;
  rounds: number;
}

export const historyParams = (smoke: boolean): HistoryParams =>
  smoke
    ? {
        levels: [1, 16],
        sessions: 20,
        messagesPerSession: 51,
        pageLimit: 50,
        durationMs: 150,
        rawDurationMs: 100,
        warmupMs: 30,
        maxOps: 300,
        diagnosticsReads: 10,
        rounds: 1,
      }
    : {
        levels: [1, 16],
        sessions: 200,
        messagesPerSession: 51,
        pageLimit: 50,
        durationMs: 5000,
        rawDurationMs: 3000,
        warmupMs: 1000,
        maxOps: 100_000,
        diagnosticsReads: 300,
        rounds: 3,
      };

interface ByLevel<T> {
  [concurrency: string]: T;
}

export interface HistoryResults {
  params: HistoryParams;
  responseBytes: number;
  cacheValueBytes: number;
  hit: ByLevel<HttpLoadResult>;
  miss: ByLevel<HttpLoadResult>;
  /** The session-messages handler called directly in the cached runner's process (runner overhead). */
  directHit: ByLevel<LoopResult>;
  rawRedisGet: ByLevel<LoopResult>;
  rawSqlPage: ByLevel<LoopResult>;
  bareHttp: ByLevel<HttpLoadResult>;
  /** The runner with a stub handler returning the same page (headers included): the runner's own share. Older files: none. */
  stubRunner?: ByLevel<HttpLoadResult>;
  perRequest: Record<
    string,
    { reads: number; workerCpuMs: number; pg: Record<string, number>; redis: Record<string, number> }
  >;
  /** ms of CPU per read by process role (/proc), as in the write results. Older files: none. */
  cpu?: Record<"hit" | "miss", ByLevel<CpuPerOp | undefined>>;
}

async function seed(pool: { query: (sql: string, v?: unknown[]) => Promise<unknown> }, p: HistoryParams) {
  const sessions: BenchSession[] = Array.from({ length: p.sessions }, () => ({
    id: randomUUID(),
    token: randomBytes(32).toString("base64url"),
  }));
  const n = p.messagesPerSession;
  await pool.query(
    `INSERT INTO sessions (session_id, token_hash, created_at, updated_at, last_seq, message_count, suggestions)
     SELECT id, decode(h, 'hex'), now(), now(), $3, $3, '["Tell me more"]'::jsonb
       FROM unnest($1::uuid[], $2::text[]) AS u(id, h)`,
    [sessions.map((s) => s.id), sessions.map((s) => createHash("sha256").update(s.token).digest("hex")), n],
  );
  await pool.query(
    `INSERT INTO messages (message_id, session_id, seq, role, content, version, created_at)
     SELECT gen_random_uuid(), s.session_id, g,
            CASE WHEN g % 2 = 0 THEN 'user' ELSE 'assistant' END,
            CASE WHEN g % 2 = 0 THEN ($1::text[])[1 + g % 6]
                 ELSE 'I hear you: "' || ($1::text[])[1 + (g + 1) % 6] || '". Tell me more, or type ''help'' to see what I can do.' END,
            1, now() - make_interval(secs => $2 - g)
       FROM sessions s, generate_series(1, $2) AS g`,
    [USER_MESSAGES, n],
  );
  await pool.query("VACUUM ANALYZE");
  return sessions;
}

const perRead = (c: CounterReport, n: number) => ({
  reads: n,
  workerCpuMs: Math.round((c.cpuMs / n) * 1000) / 1000,
  pg: Object.fromEntries(Object.entries(c.pg).map(([k, v]) => [k, Math.round((v / n) * 100) / 100])),
  redis: Object.fromEntries(Object.entries(c.redis).map(([k, v]) => [k, Math.round((v / n) * 100) / 100])),
});

export async function historyBench(ctx: BenchContext): Promise<HistoryResults> {
  const p = historyParams(ctx.smoke);
  const db = await ctx.dbs.create("history");
  const workers: Worker[] = [];
  try {
    const sessions = await seed(db.pool, p);
    const ids = sessions.map((s) => s.id);
    const cached = await startWorker("api-cache", WORKERS.api, {
      env: ctx.env({ DATABASE_URL: db.url, REDIS_URL: ctx.redisUrl }),
      execArgv: ctx.workerExecArgv,
    });
    workers.push(cached);
    const uncached = await startWorker("api-nocache", WORKERS.api, {
      env: ctx.env({ DATABASE_URL: db.url }),
      execArgv: ctx.workerExecArgv,
    });
    workers.push(uncached);
    const raw = await startWorker("raw", WORKERS.raw, {
      env: ctx.env({ DATABASE_URL: db.url, REDIS_URL: ctx.redisUrl }),
      execArgv: ctx.workerExecArgv,
    });
    workers.push(raw);
    const cachedUrl = (await cached.call<{ url: string }>("start")).url;
    const uncachedUrl = (await uncached.call<{ url: string }>("start")).url;

    const request = (s: BenchSession) => ({
      method: "GET" as const,
      path: `/sessions/${s.id}/messages?limit=${p.pageLimit}`,
      headers: { authorization: `Bearer ${s.token}` },
    });
    const pick = (seq: number) => sessions[seq % sessions.length] as BenchSession;
    // Fill the cache (first read of each session) and warm both runners.
    const once = { concurrency: 4, durationMs: 60_000, maxOps: sessions.length };
    const fill = await httpLoad(cachedUrl, once, (_w, seq) => request(pick(seq)), "x-cache");
    await httpLoad(uncachedUrl, once, (_w, seq) => request(pick(seq)));
    if (fill.non2xx > 0)
      throw new Error(`history warm-up got non-2xx answers: ${JSON.stringify(fill.statuses)}`);
    const sample = await fetch(`${cachedUrl}${request(pick(0)).path}`, { headers: request(pick(0)).headers });
    const body = await sample.text();
    const { url: bareUrl } = await raw.call<{ url: string }>("bareHttp", { body });
    const pageHeaders: Record<string, string> = {};
    sample.headers.forEach((v, k) => {
      if (!["content-length", "connection", "keep-alive", "date", "transfer-encoding"].includes(k))
        pageHeaders[k] = v;
    });
    const { url: stubUrl } = await raw.call<{ url: string }>("stubRunnerHttp", {
      body,
      headers: pageHeaders,
    });

    const results: HistoryResults = {
      params: p,
      responseBytes: Buffer.byteLength(body),
      cacheValueBytes: 0,
      hit: {},
      miss: {},
      directHit: {},
      rawRedisGet: {},
      rawSqlPage: {},
      bareHttp: {},
      stubRunner: {},
      perRequest: {},
      cpu: { hit: {}, miss: {} },
    };
    const part = (c: number, durationMs: number, round: number) => ({
      concurrency: c,
      durationMs: durationMs / p.rounds,
      maxOps: p.maxOps,
      warmupMs: round === 0 ? p.warmupMs : 0,
      keepSamples: true,
    });
    const rawArgs = (c: number, round: number) => ({
      ...part(c, p.rawDurationMs, round),
      sessionIds: ids,
      limit: p.pageLimit,
    });
    const mergeHttp = (parts: HttpLoadResult[]): HttpLoadResult => {
      const headerCounts: Record<string, number> = {};
      for (const x of parts)
        for (const [k, v] of Object.entries(x.headerCounts)) headerCounts[k] = (headerCounts[k] ?? 0) + v;
      return { ...mergeRounds(parts), headerCounts };
    };
    for (const c of p.levels) {
      ctx.log(
        `history: c=${c}: hit / miss / hit direct / raw Redis GET / raw SQL / bare HTTP, ${p.rounds} interleaved rounds`,
      );
      const parts = {
        hit: [] as HttpLoadResult[],
        miss: [] as HttpLoadResult[],
        direct: [] as LoopResult[],
        redis: [] as (LoopResult & { valueBytes: number })[],
        sql: [] as LoopResult[],
        http: [] as HttpLoadResult[],
        stub: [] as HttpLoadResult[],
      };
      const cpu = { hit: new CpuTally(), miss: new CpuTally() };
      for (let round = 0; round < p.rounds; round++) {
        await checkpoint();
        const measureCpu = tallyRound(round, p.rounds);
        parts.hit.push(
          await cpu.hit.measure(
            cached.pid,
            () =>
              httpLoad(cachedUrl, part(c, p.durationMs, round), (_w, seq) => request(pick(seq)), "x-cache"),
            measureCpu,
          ),
        );
        parts.miss.push(
          await cpu.miss.measure(
            uncached.pid,
            () =>
              httpLoad(uncachedUrl, part(c, p.durationMs, round), (_w, seq) => request(pick(seq)), "x-cache"),
            measureCpu,
          ),
        );
        parts.direct.push(
          await cached.call<LoopResult>("directGet", {
            ...part(c, p.rawDurationMs, round),
            name: "session-messages",
            routeKey: "GET /sessions/{session_id}/messages",
            path: `/sessions/{session_id}/messages?limit=${p.pageLimit}`,
            sessions,
          }),
        );
        parts.redis.push(await raw.call<LoopResult & { valueBytes: number }>("redisGet", rawArgs(c, round)));
        parts.sql.push(await raw.call<LoopResult>("sqlPage", rawArgs(c, round)));
        parts.http.push(
          await httpLoad(bareUrl, part(c, p.rawDurationMs, round), () => ({
            method: "GET",
            path: "/",
            headers: {},
          })),
        );
        parts.stub.push(
          await httpLoad(stubUrl, part(c, p.rawDurationMs, round), () => ({
            method: "GET",
            path: "/stub",
            headers: {},
          })),
        );
      }
      for (const kind of ["hit", "miss"] as const) if (results.cpu) results.cpu[kind][c] = cpu[kind].perOp();
      results.hit[c] = mergeHttp(parts.hit);
      results.miss[c] = mergeHttp(parts.miss);
      results.directHit[c] = mergeRounds(parts.direct);
      results.rawRedisGet[c] = mergeRounds(parts.redis);
      results.cacheValueBytes = parts.redis[0]?.valueBytes ?? 0;
      results.rawSqlPage[c] = mergeRounds(parts.sql);
      results.bareHttp[c] = mergeHttp(parts.http);
      (results.stubRunner as ByLevel<HttpLoadResult>)[c] = mergeHttp(parts.stub);
      const f = (r: LoopResult | undefined) => `p50 ${r?.p50} ms, ${r?.opsPerSec}/s`;
      ctx.log(
        `  hit ${f(results.hit[c])} | miss ${f(results.miss[c])} | direct ${f(results.directHit[c])} | redis ${f(results.rawRedisGet[c])} | sql ${f(results.rawSqlPage[c])} | http ${f(results.bareHttp[c])} | runner+stub ${f(results.stubRunner?.[c])}`,
      );
    }
    for (const [label, worker, url] of [
      ["hit", cached, cachedUrl],
      ["miss", uncached, uncachedUrl],
    ] as const) {
      await worker.call("resetCounters");
      const d = await httpLoad(
        url,
        { concurrency: 1, durationMs: 60_000, maxOps: p.diagnosticsReads },
        (_w, seq) => request(pick(seq)),
      );
      results.perRequest[label] = perRead(await worker.call<CounterReport>("counters"), d.n + d.errors);
    }
    return results;
  } finally {
    for (const w of workers) await w.close();
    ctx.dbs.release(db);
  }
}
