import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpClient, type LoadRecord, startLoad, summarize } from "../helpers/load.ts";
import { startRunnerProcess } from "../helpers/runner-process.ts";
import {
  cacheHitRatio,
  getSession,
  type Http,
  history,
  mustCreateSession,
  newTag,
  postMessage,
} from "./support/chat-api.ts";
import { sample, writeFigures } from "./support/figures.ts";
import { reconcile, reconciled, reconciliationFigures } from "./support/reconcile.ts";
import {
  type Backends,
  type Scenario,
  sleep,
  startBackends,
  startScenario,
  waitUntil,
} from "./support/stack.ts";
import { startTcpProxy } from "./support/tcp-proxy.ts";
import { staleFigures, type WriterState, writerInit, writerStep } from "./support/workloads.ts";

/**
 * Fault 1: Redis goes away under load (c = 16) and comes back. Redis is a cache: no request may fail, none may
 * wait longer than the Redis timeouts on top of normal latency, and nothing written during the outage may be
 * read stale afterwards.
 *  1a: stop (SIGKILL) and start again: the new server is empty, the client reconnects.
 *  1b: pause (SIGSTOP) and resume: the server keeps its socket and its data; commands time out, and the
 *      entries it still holds went stale during the outage, so this is the variant that can serve stale reads.
 */
const C = 16;
const REDIS_TIMEOUT_MS = 50; // REDIS_COMMAND_TIMEOUT_MS and REDIS_CONNECT_TIMEOUT_MS (the defaults, set explicitly)
/**
 * Normal latency bound: the fault window's max latency may exceed the baseline's max by at most a few Redis
 * timeouts (a request can meet a timeout on its read, its write and the recovery ping) plus this margin for
 * scheduling noise on a 2-core machine.
 */
const NOISE_MS = Number(process.env.RELIABILITY_LATENCY_NOISE_MS ?? 250);
const BASELINE_MS = 2500;
const OUTAGE_MS = 3500;
const AFTER_MS = 4000;

let backends: Backends;
beforeAll(async () => {
  backends = await startBackends({ redis: true });
}, 60_000);
afterAll(async () => {
  await backends?.close();
});

async function redisScenario(variant: "stop" | "pause") {
  const id = variant === "stop" ? "1a-redis-stop-start" : "1b-redis-pause-resume";
  const redis = backends.redis!;
  const scenario: Scenario = await startScenario(backends, `redis_${variant}`, {
    REDIS_COMMAND_TIMEOUT_MS: String(REDIS_TIMEOUT_MS),
    REDIS_CONNECT_TIMEOUT_MS: String(REDIS_TIMEOUT_MS),
  });
  const t0 = Date.now();
  try {
    const load = await startLoad<WriterState>({
      baseUrl: scenario.runner.url,
      concurrency: C,
      durationMs: BASELINE_MS + OUTAGE_MS + AFTER_MS,
      init: writerInit(id),
      step: writerStep,
    });
    await sleep(BASELINE_MS);
    const faultAt = load.mark("fault");
    if (variant === "stop") await redis.stop();
    else redis.pause();
    await sleep(OUTAGE_MS);
    const restoredAt = load.mark("restored");
    if (variant === "stop") await redis.start();
    else redis.resume();
    const result = await load.done;

    const all = summarize(result.records);
    const baseline = summarize(result.records, { to: faultAt });
    const fault = summarize(result.records, { from: faultAt, to: restoredAt + 2500 });
    const after = result.records.filter((r) => r.start >= restoredAt);
    const stale = staleFigures(result.states);
    const rec = await reconcile(scenario.db, result.records);
    const bound = baseline.maxLatencyMs + 3 * REDIS_TIMEOUT_MS + NOISE_MS;
    const failed = all.requests - all.ok;

    writeFigures({
      id,
      title:
        variant === "stop"
          ? `Redis stopped (SIGKILL) for ${OUTAGE_MS / 1000} s, then started again (empty)`
          : `Redis paused (SIGSTOP) for ${OUTAGE_MS / 1000} s, then resumed (data kept)`,
      fault:
        variant === "stop"
          ? "redis-server killed, restarted on the same port"
          : "redis-server SIGSTOP/SIGCONT",
      load: `c=${C}, ${(BASELINE_MS + OUTAGE_MS + AFTER_MS) / 1000} s, post + 2 reads per step`,
      figures: {
        requests: all.requests,
        ok: all.ok,
        failed,
        fiveXx: all.fiveXx,
        network: all.networkErrors,
        baselineMaxMs: baseline.maxLatencyMs,
        faultMaxMs: fault.maxLatencyMs,
        faultP99Ms: fault.p99LatencyMs,
        latencyBoundMs: Math.round(bound),
        staleReads: stale.staleReads,
        cacheHitBefore:
          Math.round(cacheHitRatio(result.records.filter((r) => r.start < faultAt)) * 100) / 100,
        cacheHitAfter: Math.round(cacheHitRatio(after) * 100) / 100,
        ...reconciliationFigures(rec),
      },
      invariants: [
        { name: "no request failed", ok: failed === 0, detail: JSON.stringify(all.byStatus) },
        {
          name: "max latency during the fault ≤ baseline max + 3 × Redis timeout + noise",
          ok: fault.maxLatencyMs <= bound,
          detail: `${fault.maxLatencyMs} ms > ${Math.round(bound)} ms`,
        },
        {
          name: "no stale read (a read sent after a 201 that does not show it)",
          ok: stale.staleReads === 0,
          detail: sample(stale.details),
        },
        reconciled.acknowledged(rec),
        reconciled.noDuplicates(rec),
        reconciled.gapless(rec),
        reconciled.oneEventPerChange(rec),
        { name: "the cache serves again after Redis returned", ok: cacheHitRatio(after) > 0 },
      ],
      durationSeconds: Math.round((Date.now() - t0) / 1000),
    });
    if (result.stepErrors.length) throw new Error(result.stepErrors[0]);

    expect(failed, JSON.stringify(all.byStatus)).toBe(0);
    expect(fault.maxLatencyMs).toBeLessThanOrEqual(bound);
    expect(rec.missing).toEqual([]);
    expect(rec.duplicateTags).toEqual([]);
    expect(rec.seqGaps).toEqual([]);
    expect(rec.countMismatches).toEqual([]);
    expect(rec.halfWrittenTurns).toEqual([]);
    expect(rec.eventProblems).toEqual([]);
    expect(rec.found).toBe(rec.acknowledged);
    expect(cacheHitRatio(after)).toBeGreaterThan(0);
    expect(stale.details).toEqual([]);
  } finally {
    await scenario.close();
    if (variant === "pause") redis.resume();
  }
}

/**
 * 1c: Redis unreachable from ONE of two server processes (two Lambda instances; a partition, a stalled
 * connection). Instance A writes through a TCP proxy that is cut, instance B keeps Redis. Every worker posts
 * through A and reads its own session back through B. Phases: warm → cut (A cannot reach Redis) → A idle
 * (proxy restored, A gets no request: a frozen instance) → A serves again.
 */
async function partitionScenario() {
  const id = "1c-redis-partition-one-instance";
  const redis = backends.redis!;
  const proxy = await startTcpProxy(redis.port);
  const scenario = await startScenario(backends, "redis_partition", {
    REDIS_URL: proxy.url("redis"),
    REDIS_COMMAND_TIMEOUT_MS: String(REDIS_TIMEOUT_MS),
    REDIS_CONNECT_TIMEOUT_MS: String(REDIS_TIMEOUT_MS),
  });
  const b = await startRunnerProcess({ env: { ...scenario.env, REDIS_URL: redis.url } });
  const t0 = Date.now();
  const phases = ["warm", "cut", "idle", "after"] as const;
  type Phase = (typeof phases)[number];
  let phase: Phase = "warm";
  // Bounded, not zero: B learns of A's failed cache writes by draining cache_invalidations once a second.
  const STALE_BOUND_MS = 2000;
  const stale: Record<Phase, number> = { warm: 0, cut: 0, idle: 0, after: 0 };
  const overBound: Record<Phase, number> = { warm: 0, cut: 0, idle: 0, after: 0 };
  const ackedAt = new WeakMap<WriterState, { seq: number; at: number }[]>();
  const details: string[] = [];
  const PHASE_MS: Record<Phase, number> = { warm: 1500, cut: 3000, idle: 2500, after: 2500 };
  try {
    const load = await startLoad<WriterState>({
      baseUrl: scenario.runner.url,
      concurrency: C,
      durationMs: phases.reduce((n, p) => n + PHASE_MS[p], 0),
      init: writerInit(id),
      step: async (ctx) => {
        const st = ctx.state;
        const viaB: Http = (op, method, path, opts) => ctx.http(`${op}-b`, method, `${b.url}${path}`, opts);
        const at = phase;
        const acked = (ackedAt.get(st) ?? []) as { seq: number; at: number }[];
        ackedAt.set(st, acked);
        if (at === "idle") await sleep(20);
        else {
          const posted = await postMessage(ctx.http, st.session, newTag(st.prefix));
          if (posted.reply) {
            st.lastSeq = Math.max(st.lastSeq, posted.reply.seq);
            acked.push({ seq: posted.reply.seq, at: Date.now() });
          }
        }
        const expected = st.lastSeq;
        // How long ago the oldest write B does not show yet was acknowledged by A.
        const ageOfUnseen = (seenSeq: number) => {
          const first = acked.find((a) => a.seq > seenSeq);
          return first ? Date.now() - first.at : 0;
        };
        const judge = (seenSeq: number, what: string) => {
          const age = ageOfUnseen(seenSeq);
          if (age <= STALE_BOUND_MS) stale[at]++;
          else {
            overBound[at]++;
            if (details.length < 5) details.push(`${at}: B ${what} ${age} ms after A acknowledged it`);
          }
        };
        const seen = await getSession(viaB, st.session);
        if (seen.status === 200 && seen.body.last_seq < expected) judge(seen.body.last_seq, "missed a write");
        const page = await history(viaB, st.session, Math.max(0, expected - 2));
        if (page.status === 200 && expected > 1 && !page.body.messages.some((m) => m.seq === expected))
          judge(expected - 1, "missed a message");
      },
    });
    for (const p of phases) {
      phase = p;
      load.mark(p);
      if (p === "cut") await proxy.cut();
      if (p === "idle") await proxy.restore();
      await sleep(PHASE_MS[p]);
    }
    const result = await load.done;
    const all = summarize(result.records);
    const rec = await reconcile(scenario.db, result.records);
    const invalidationsLeft = (
      await scenario.db.query<{ n: number }>("SELECT count(*)::int AS n FROM cache_invalidations")
    ).rows[0]?.n;
    const failed = all.requests - all.ok;

    writeFigures({
      id,
      title: `Redis unreachable from one of two server processes (${PHASE_MS.cut / 1000} s), then that process idle (${PHASE_MS.idle / 1000} s)`,
      fault: "TCP proxy between instance A and Redis cut, then restored; instance B keeps Redis",
      load: `c=${C}, ${phases.map((p) => `${p} ${PHASE_MS[p] / 1000} s`).join(", ")}; post via A, 2 reads via B`,
      figures: {
        requests: all.requests,
        ok: all.ok,
        failed,
        fiveXx: all.fiveXx,
        network: all.networkErrors,
        faultMaxMs: summarize(result.records, { from: result.marks[1]?.at }).maxLatencyMs,
        staleWarm: stale.warm,
        staleCut: stale.cut,
        staleIdle: stale.idle,
        staleAfter: stale.after,
        staleOverBound: overBound.warm + overBound.cut + overBound.idle + overBound.after,
        invalidationsLeft: invalidationsLeft ?? 0,
        ...reconciliationFigures(rec),
      },
      invariants: [
        { name: "no request failed", ok: failed === 0, detail: JSON.stringify(all.byStatus) },
        {
          name: `B never misses a write A acknowledged more than ${STALE_BOUND_MS} ms before`,
          ok: overBound.warm + overBound.cut + overBound.idle + overBound.after === 0,
          detail: sample(details),
        },
        reconciled.acknowledged(rec),
        reconciled.gapless(rec),
        reconciled.oneEventPerChange(rec),
      ],
      notes: [
        "A records the sessions whose cache entries it could not update in cache_invalidations; every instance " +
          "drains that table at most once a second on its read path, so B's stale reads are bounded by about " +
          "a second after A's acknowledgement (staleCut counts those within the bound; staleOverBound must be 0).",
      ],
      durationSeconds: Math.round((Date.now() - t0) / 1000),
    });
    if (result.stepErrors.length) throw new Error(result.stepErrors[0]);

    expect(failed, JSON.stringify(all.byStatus)).toBe(0);
    expect(rec.missing).toEqual([]);
    expect(rec.seqGaps).toEqual([]);
    expect(rec.eventProblems).toEqual([]);
    expect(details).toEqual([]);
  } finally {
    await b.kill("SIGTERM", 5000);
    await scenario.close();
    await proxy.close();
  }
}

/**
 * 1d: the same stale read in ONE process, made deterministic. A writer that finds the cache distrusted commits,
 * then records its session in cache_invalidations; if that INSERT lands after the recovery's drain has read the
 * table, the recovery trusts Redis again while Redis still holds the session's pre-outage entry. Holding a lock
 * on cache_invalidations (a slow INSERT) puts the writer's INSERT after the drain every time. Under load the
 * same interleaving happens by chance (the soak's staleReads).
 */
async function lateInvalidationScenario() {
  const id = "1d-redis-late-invalidation";
  const redis = backends.redis!;
  const scenario = await startScenario(backends, "redis_late_invalidation", {
    REDIS_COMMAND_TIMEOUT_MS: String(REDIS_TIMEOUT_MS),
    REDIS_CONNECT_TIMEOUT_MS: String(REDIS_TIMEOUT_MS),
  });
  const t0 = Date.now();
  const records: LoadRecord[] = [];
  const client = new HttpClient(scenario.runner.url, { sink: (r) => records.push(r) });
  const http: Http = (op, method, path, opts) => client.request(op, method, path, opts);
  const lock = await scenario.db.connect();
  try {
    const s = await mustCreateSession(http);
    const other = await mustCreateSession(http);
    const first = await postMessage(http, s, newTag("late"));
    const cached = await history(http, s, 0);
    await history(http, other, 0);
    // 1. the cache is distrusted: reads time out against a paused Redis (3 in a row turn the cache off)
    await lock.query("BEGIN");
    await lock.query("LOCK TABLE cache_invalidations IN EXCLUSIVE MODE"); // INSERTs wait, SELECTs do not
    redis.pause();
    let timedOut = await history(http, other, 0);
    for (let i = 1; i < 3; i++) timedOut = await history(http, other, 0);
    redis.resume();
    const distrustedAt = Date.now();
    // 2. a post commits while the cache is distrusted; its INSERT INTO cache_invalidations waits on the lock
    const posting = postMessage(http, s, newTag("late"));
    const waiting = await waitUntil(async () => {
      const r = await scenario.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE application_name = 'chat-backend' AND wait_event_type = 'Lock' AND query LIKE '%cache_invalidations%'`,
      );
      return (r.rows[0]?.n ?? 0) > 0;
    }, 5000);
    // 3. a request after the recovery interval recovers the cache: the drain finds nothing to invalidate
    await sleep(Math.max(0, distrustedAt + 1200 - Date.now()));
    const recovered = await history(http, other, 0);
    // 4. the INSERT goes through, the post is acknowledged
    await lock.query("COMMIT");
    const posted = await posting;
    // 5. read back what was acknowledged
    const read = await getSession(http, s);
    const page = await history(http, s, 0, 200);
    const acknowledged = posted.reply?.seq ?? 0;
    const staleSession = read.status === 200 && read.body.last_seq < acknowledged;
    const stalePage = page.status === 200 && !page.body.messages.some((m) => m.seq === acknowledged);
    const rec = await reconcile(scenario.db, records);
    const left = (
      await scenario.db.query<{ n: number }>("SELECT count(*)::int AS n FROM cache_invalidations")
    ).rows[0]?.n;

    writeFigures({
      id,
      title: "Cache invalidation recorded after the recovery's drain (one process, deterministic)",
      fault:
        "Redis paused for one request (cache distrusted); cache_invalidations locked while a post commits",
      load: "single requests, in order",
      figures: {
        requests: records.length,
        ok: records.filter((r) => r.status >= 200 && r.status < 300).length,
        firstSeq: first.reply?.seq ?? 0,
        cachedBefore: String(cached.record.meta?.cache),
        timedOutRead: String(timedOut.record.meta?.cache),
        insertWaited: String(waiting),
        recoveredRead: String(recovered.record.meta?.cache),
        acknowledgedSeq: acknowledged,
        readLastSeq: read.body?.last_seq ?? -1,
        readCache: String(page.record.meta?.cache),
        invalidationsLeft: left ?? 0,
        ...reconciliationFigures(rec),
      },
      invariants: [
        { name: "the post was acknowledged", ok: posted.status === 201, detail: String(posted.status) },
        reconciled.acknowledged(rec),
        {
          name: "a read after the acknowledgement shows it (session and history)",
          ok: !staleSession && !stalePage,
          detail: `acknowledged seq ${acknowledged}; GET session last_seq ${read.body?.last_seq}, history x-cache ${String(page.record.meta?.cache)}`,
        },
      ],
      notes: [
        "The stale entry stays until the session's next write, its TTL (CACHE_SESSION_TTL_SECONDS, 300 s), the next " +
          "distrust-and-recover cycle of this process, or the hourly maintenance run (both drain the table).",
      ],
      durationSeconds: Math.round((Date.now() - t0) / 1000),
    });

    expect(waiting).toBe(true);
    expect(recovered.record.meta?.cache).toBe("hit"); // the cache was trusted again before the INSERT
    expect(posted.status).toBe(201);
    expect(rec.missing).toEqual([]);
    expect({ staleSession, stalePage }).toEqual({ staleSession: false, stalePage: false });
  } finally {
    await lock.query("ROLLBACK").catch(() => {});
    lock.release();
    redis.resume();
    client.close();
    await scenario.close();
  }
}

describe("fault 1: Redis outage under load", () => {
  it(
    "1a: Redis stopped and started again: no failure, bounded latency, no stale read",
    () => redisScenario("stop"),
    90_000,
  );
  it(
    "1b: Redis paused and resumed: no failure, bounded latency, no stale read",
    () => redisScenario("pause"),
    90_000,
  );
  it(
    "1c: Redis unreachable from one of two instances: no failure, the other never stale for more than 2 s",
    () => partitionScenario(),
    90_000,
  );
  it(
    "1d: an invalidation recorded after the recovery's drain: no stale read",
    lateInvalidationScenario,
    60_000,
  );
});
