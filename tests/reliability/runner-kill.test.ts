import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLoad, summarize } from "../helpers/load.ts";
import { sample, writeFigures } from "./support/figures.ts";
import { reconcile, reconciled, reconciliationFigures } from "./support/reconcile.ts";
import { type Backends, sleep, startBackends, startScenario } from "./support/stack.ts";
import {
  retryFailedPosts,
  staleFigures,
  type WriterState,
  writerInit,
  writerStep,
} from "./support/workloads.ts";

/**
 * Fault 4: the server process is SIGKILLed under load (c = 16) — a Lambda host lost mid-request — and started
 * again on the same port and database. Every response that said 201 before the kill must be in Postgres with
 * its events; the requests in flight are retried once with their Idempotency-Key after the restart and must
 * never produce a second copy of a turn.
 */
const C = 16;
const BEFORE_MS = 4000;
const AFTER_MS = 4000;

let backends: Backends;
beforeAll(async () => {
  backends = await startBackends({ redis: true });
}, 60_000);
afterAll(async () => {
  await backends?.close();
});

describe("fault 4: server process killed mid-load", () => {
  it("4: every 201 before a SIGKILL is in Postgres with its events; restart serves again", async () => {
    const scenario = await startScenario(backends, "runner_kill");
    const t0 = Date.now();
    try {
      const firstPid = scenario.runner.pid;
      const load = await startLoad<WriterState>({
        baseUrl: scenario.runner.url,
        concurrency: C,
        durationMs: 60_000, // stopped explicitly below
        init: writerInit("kill", { idempotent: true }),
        step: writerStep,
      });
      await sleep(BEFORE_MS);
      const rssAtKill = scenario.runner.rssBytes();
      const killAt = load.mark("kill");
      const exit = await scenario.runner.kill("SIGKILL");
      const killedAt = load.mark("killed");
      await scenario.restartRunner();
      const restartedAt = load.mark("restarted");
      await sleep(AFTER_MS);
      load.stop();
      const result = await load.done;
      const retries = await retryFailedPosts(scenario.runner.url, result.records, C);

      const beforeKill = result.records.filter((r) => r.end < killAt);
      const ackedBeforeKill = beforeKill.filter((r) => r.status === 201 && r.ids);
      const inFlight = result.records.filter((r) => r.start < killedAt && r.end >= killAt);
      const down = result.records.filter((r) => r.start >= killedAt && r.start < restartedAt);
      const afterRestart = result.records.filter((r) => r.start >= restartedAt);
      const afterSummary = summarize(afterRestart);
      const httpFailures = result.records.filter(
        (r) => r.status !== 0 && (r.status < 200 || r.status >= 300),
      );
      const retrySummary = summarize(retries);
      const stale = staleFigures(result.states);

      // the 201s before the kill, on their own: every id in Postgres, with its events
      const recBefore = await reconcile(scenario.db, ackedBeforeKill);
      const rec = await reconcile(scenario.db, [...result.records, ...retries]);

      writeFigures({
        id: "4-runner-sigkill",
        title: "Server process SIGKILLed mid-load, then started again",
        fault: "kill -9 of `node local/main.ts`; new process on the same port and database",
        load: `c=${C}, ${BEFORE_MS / 1000} s before + restart + ${AFTER_MS / 1000} s after, post (Idempotency-Key) + 3 reads`,
        figures: {
          requests: result.records.length,
          ok: summarize(result.records).ok,
          acknowledgedBeforeKill: recBefore.acknowledged,
          foundBeforeKill: recBefore.found,
          inFlightAtKill: inFlight.length,
          refusedWhileDown: down.filter((r) => r.status === 0).length,
          restartMs: Math.round(restartedAt - killedAt),
          fiveXx: result.records.filter((r) => r.status >= 500).length,
          httpFailures: httpFailures.length,
          afterRestartOk: afterSummary.ok,
          afterRestartRequests: afterSummary.requests,
          retried: retries.length,
          retryOk: retrySummary.ok,
          retryReplayed: retries.filter((r) => r.meta?.replayed === true).length,
          retryStuck: retries.filter((r) => r.status === 409 && r.code === "request_in_progress").length,
          staleReads: stale.staleReads,
          rssAtKillMb: Math.round(rssAtKill / 1048576),
          ...reconciliationFigures(rec),
        },
        invariants: [
          {
            name: "the process died of SIGKILL",
            ok: exit.signal === "SIGKILL",
            detail: JSON.stringify(exit),
          },
          {
            name: "every 201 before the kill is in Postgres (right session and seq)",
            ok: recBefore.missing.length === 0 && recBefore.found === recBefore.acknowledged,
            detail: sample(recBefore.missing),
          },
          {
            name: "…with exactly one outbox event per change",
            ok: rec.eventProblems.length === 0,
            detail: sample(rec.eventProblems),
          },
          {
            name: "no half-written turn",
            ok: rec.halfWrittenTurns.length === 0,
            detail: sample(rec.halfWrittenTurns),
          },
          reconciled.gapless(rec),
          {
            name: "no duplicate turn (in-flight posts retried with their key)",
            ok: rec.duplicateTags.length === 0,
            detail: sample(rec.duplicateTags),
          },
          {
            name: "no HTTP error answer (only refused connections while down)",
            ok: httpFailures.length === 0,
            detail: JSON.stringify(summarize(httpFailures).byStatus),
          },
          {
            name: "the restarted server answers everything",
            ok: afterSummary.ok === afterSummary.requests && afterSummary.requests > 0,
            detail: JSON.stringify(afterSummary.byStatus),
          },
          { name: "no stale read", ok: stale.staleReads === 0, detail: sample(stale.details) },
        ],
        notes: [
          "A post killed between its Idempotency-Key claim and its commit leaves the claim in_progress: its retry " +
            "gets 409 request_in_progress until the claim's lock (IDEMPOTENCY_LOCK_SECONDS, 30 s) expires (bug 1, asserted deterministically " +
            "in 3c). Counted as retryStuck, not asserted here: it depends on where the kill lands.",
        ],
        durationSeconds: Math.round((Date.now() - t0) / 1000),
      });
      if (result.stepErrors.length) throw new Error(result.stepErrors[0]);

      expect(exit.signal).toBe("SIGKILL");
      expect(scenario.runner.pid).not.toBe(firstPid);
      expect(recBefore.acknowledged).toBeGreaterThan(0);
      expect(recBefore.missing).toEqual([]);
      expect(recBefore.found).toBe(recBefore.acknowledged);
      expect(recBefore.eventProblems).toEqual([]);
      expect(rec.eventProblems).toEqual([]);
      expect(rec.halfWrittenTurns).toEqual([]);
      expect(rec.seqGaps).toEqual([]);
      expect(rec.countMismatches).toEqual([]);
      expect(rec.duplicateTags).toEqual([]);
      expect(rec.missing).toEqual([]);
      expect(summarize(httpFailures).byStatus).toEqual({});
      expect(afterSummary.requests).toBeGreaterThan(0);
      // the restarted server answers every request (a refused or reset connection counts as status 0)
      expect(afterSummary.ok).toBe(afterSummary.requests);
      expect(afterSummary.byStatus).toEqual(summarize(afterRestart.filter((r) => r.status < 300)).byStatus);
      expect(stale.details).toEqual([]);
    } finally {
      await scenario.close();
    }
  }, 120_000);
});
