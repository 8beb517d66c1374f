import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpClient, type LoadRecord, startLoad, summarize } from "../helpers/load.ts";
import {
  type ApiMessage,
  deleteMessage,
  editMessage,
  type Http,
  history,
  mustCreateSession,
  newTag,
  postMessage,
  type SessionRef,
} from "./support/chat-api.ts";
import { sample, writeFigures } from "./support/figures.ts";
import { reconcile, reconciled, reconciliationFigures } from "./support/reconcile.ts";
import { type Backends, type Scenario, startBackends, startScenario } from "./support/stack.ts";

/**
 * 6: load and concurrency, no fault. 200 posts at once over 10 sessions (20 per session: most queue on the
 * session's row lock, some may get 409 session_busy — allowed, counted); then 100 edits and deletes at once
 * of the same few messages. No 5xx; seq stays gapless; each version has one winner; a delete is never undone.
 */
const SESSIONS = 10;
const POSTS = 200;
const TARGETS = 4; // messages under concurrent edit/delete
const EDITS_DELETES = 100;

let backends: Backends;
let scenario: Scenario;
let client: HttpClient;
/** Every request of the file (set-up included), so the reconciliations know what was acknowledged. */
const allRecords: LoadRecord[] = [];
const http: Http = (op, method, path, opts) => client.request(op, method, path, opts);

beforeAll(async () => {
  backends = await startBackends({ redis: true });
  scenario = await startScenario(backends, "concurrency");
  client = new HttpClient(scenario.runner.url, { maxSockets: 8, sink: (r) => allRecords.push(r) });
}, 90_000);
afterAll(async () => {
  client?.close();
  await scenario?.close();
  await backends?.close();
});

describe("6: load and concurrency", () => {
  it("6a: 200 concurrent posts over 10 sessions: no 5xx, gapless seq, busy ratio counted", async () => {
    const t0 = Date.now();
    const sessions: SessionRef[] = [];
    for (let i = 0; i < SESSIONS; i++) sessions.push(await mustCreateSession(http));
    const load = await startLoad<undefined>({
      baseUrl: scenario.runner.url,
      concurrency: POSTS,
      count: POSTS,
      step: async (ctx) => {
        const s = sessions[ctx.iteration % SESSIONS] as SessionRef;
        await postMessage(ctx.http, s, newTag(`burst-${ctx.iteration}`));
      },
    });
    const result = await load.done;
    allRecords.push(...result.records);
    const all = summarize(result.records);
    const rec = await reconcile(scenario.db, allRecords);
    const lastSeqs = await scenario.db.query<{ session_id: string; last_seq: number }>(
      "SELECT session_id, last_seq FROM sessions WHERE session_id = ANY($1::uuid[])",
      [sessions.map((s) => s.sessionId)],
    );
    const created = new Map<string, number>();
    for (const r of result.records)
      if (r.status === 201)
        created.set(String(r.meta?.session), (created.get(String(r.meta?.session)) ?? 0) + 1);
    const seqMismatch = lastSeqs.rows.filter(
      (row) => row.last_seq !== 1 + 2 * (created.get(row.session_id) ?? 0),
    );
    const unexpected = result.records.filter(
      (r) => r.status !== 201 && !(r.status === 409 && r.code === "session_busy"),
    );

    writeFigures({
      id: "6a-concurrent-posts",
      title: "200 concurrent posts over 10 sessions",
      fault: "none (contention: 20 concurrent posts per session)",
      load: `${POSTS} requests at once`,
      figures: {
        requests: all.requests,
        ok: all.ok,
        sessionBusy: all.sessionBusy,
        busyRatio: Math.round((all.sessionBusy / all.requests) * 1000) / 1000,
        fiveXx: all.fiveXx,
        network: all.networkErrors,
        maxLatencyMs: all.maxLatencyMs,
        p50LatencyMs: all.p50LatencyMs,
        ...reconciliationFigures(rec),
      },
      invariants: [
        {
          name: "no 5xx",
          ok: all.fiveXx === 0 && all.networkErrors === 0,
          detail: JSON.stringify(all.byStatus),
        },
        {
          name: "only 201 or 409 session_busy",
          ok: unexpected.length === 0,
          detail: JSON.stringify(summarize(unexpected).byStatus),
        },
        reconciled.gapless(rec),
        {
          name: "last_seq = 1 + 2 × acknowledged posts (no lost or extra turn)",
          ok: seqMismatch.length === 0,
          detail: sample(seqMismatch.map((r) => `${r.session_id}: ${r.last_seq}`)),
        },
        reconciled.acknowledged(rec),
        reconciled.oneEventPerChange(rec),
      ],
      notes: [`statuses: ${JSON.stringify(all.byStatus)}`],
      durationSeconds: Math.round((Date.now() - t0) / 1000),
    });
    if (result.stepErrors.length) throw new Error(result.stepErrors[0]);

    expect(all.byStatus).not.toHaveProperty("500");
    expect(all.fiveXx, JSON.stringify(all.byStatus)).toBe(0);
    expect(all.networkErrors).toBe(0);
    expect(summarize(unexpected).byStatus).toEqual({});
    expect(all.ok).toBeGreaterThan(0);
    expect(rec.seqGaps).toEqual([]);
    expect(rec.countMismatches).toEqual([]);
    expect(seqMismatch).toEqual([]);
    expect(rec.missing).toEqual([]);
    expect(rec.duplicateTags).toEqual([]);
    expect(rec.halfWrittenTurns).toEqual([]);
    expect(rec.eventProblems).toEqual([]);
  }, 120_000);

  it("6b: 100 concurrent edits and deletes of the same messages: one winner per version, no resurrected delete", async () => {
    const t0 = Date.now();
    const session = await mustCreateSession(http);
    const targets: ApiMessage[] = [];
    for (let i = 0; i < TARGETS; i++) {
      const p = await postMessage(http, session, newTag(`target-${i}`), { op: "setup-post" });
      if (!p.message) throw new Error(`setup post failed: ${p.status}`);
      targets.push(p.message);
    }
    // 25 requests per message, shuffled and sent at once. Messages 0–1: 13 edits expecting version 1 (at most
    // one may win) and 12 unconditional edits (each win is a new version). Messages 2–3: 12 + 10 edits and
    // 3 deletes (at most one may win, and no edit after it).
    const plan: { kind: "edit-v1" | "edit" | "delete"; target: ApiMessage }[] = [];
    targets.forEach((target, i) => {
      const deletes = i < 2 ? 0 : 3;
      const v1 = i < 2 ? 13 : 12;
      for (let n = 0; n < v1; n++) plan.push({ kind: "edit-v1", target });
      for (let n = 0; n < 25 - v1 - deletes; n++) plan.push({ kind: "edit", target });
      for (let n = 0; n < deletes; n++) plan.push({ kind: "delete", target });
    });
    plan.sort(() => Math.random() - 0.5);
    const load = await startLoad<undefined>({
      baseUrl: scenario.runner.url,
      concurrency: EDITS_DELETES,
      count: EDITS_DELETES,
      step: async (ctx) => {
        const { kind, target } = plan[ctx.iteration] as (typeof plan)[number];
        if (kind === "delete") await deleteMessage(ctx.http, session, target.message_id);
        else
          await editMessage(
            ctx.http,
            session,
            target.message_id,
            `${kind} ${newTag("c")}`,
            kind === "edit-v1" ? 1 : undefined,
          );
      },
    });
    const result = await load.done;
    allRecords.push(...result.records);
    const all = summarize(result.records);
    const allowed = (r: LoadRecord) =>
      r.status === 200 ||
      (r.status === 409 && ["version_conflict", "session_busy"].includes(r.code ?? "")) ||
      (r.status === 404 && r.code === "message_not_found");
    const unexpected = result.records.filter((r) => !allowed(r));

    const rows = await scenario.db.query<{
      message_id: string;
      version: number;
      content: string;
      deleted: boolean;
    }>(
      "SELECT message_id, version, content, deleted_at IS NOT NULL AS deleted FROM messages WHERE message_id = ANY($1::uuid[])",
      [targets.map((t) => t.message_id)],
    );
    const events = await scenario.db.query<{ id: string; type: string; message_id: string; version: number }>(
      `SELECT id::text, event_type AS type, event->'data'->>'message_id' AS message_id,
              (event->'data'->>'version')::int AS version
         FROM outbox WHERE event->'data'->>'message_id' = ANY($1::text[]) ORDER BY outbox.id`,
      [targets.map((t) => t.message_id)],
    );
    const page = await history(http, session, 0, 200);

    const problems: string[] = [];
    let editWins = 0;
    let deleteWins = 0;
    for (const t of targets) {
      const mine = result.records.filter((r) => r.meta?.message === t.message_id && r.status === 200);
      const edits = mine.filter((r) => r.op === "edit");
      const deletes = mine.filter((r) => r.op === "delete");
      editWins += edits.length;
      deleteWins += deletes.length;
      const v1Wins = edits.filter((r) => r.meta?.expectedVersion === 1).length;
      const versions = edits.map((r) => r.meta?.version as number);
      const row = rows.rows.find((r) => r.message_id === t.message_id);
      if (!row) {
        problems.push(`${t.message_id} missing`);
        continue;
      }
      if (v1Wins > 1) problems.push(`${t.message_id}: ${v1Wins} edits expecting version 1 won`);
      if (new Set(versions).size !== versions.length)
        problems.push(`${t.message_id}: two edits won the same version`);
      // a delete is a version of its own, after the edits
      if (row.version !== 1 + edits.length + deletes.length)
        problems.push(
          `${t.message_id}: version ${row.version} after ${edits.length} acknowledged edits, ${deletes.length} deletes`,
        );
      if (deletes.length > 1) problems.push(`${t.message_id}: ${deletes.length} deletes succeeded`);
      if (deletes.length === 1 && !row.deleted) problems.push(`${t.message_id}: acknowledged delete undone`);
      if (row.deleted && deletes.length === 0)
        problems.push(`${t.message_id}: deleted without an acknowledged delete`);
      if (row.deleted && row.content !== "") problems.push(`${t.message_id}: deleted but content kept`);
      // no edit after the delete: in commit (outbox) order the tombstone is the message's last event
      const evs = events.rows.filter((e) => e.message_id === t.message_id);
      const delAt = evs.findIndex((e) => e.type === "chat.message.deleted");
      if (delAt >= 0 && delAt !== evs.length - 1) problems.push(`${t.message_id}: event after its deletion`);
      if (delAt >= 0 && evs[delAt]?.version !== row.version)
        problems.push(
          `${t.message_id}: deleted event at version ${evs[delAt]?.version}, the row at ${row.version}`,
        );
      const edited = evs.filter((e) => e.type === "chat.message.edited").map((e) => e.version);
      if (edited.join() !== Array.from({ length: edits.length }, (_, i) => i + 2).join())
        problems.push(`${t.message_id}: edited events ${edited.join()} for ${edits.length} edits`);
      const shown = page.body?.messages?.find((m) => m.message_id === t.message_id);
      if (row.deleted && shown) problems.push(`${t.message_id}: deleted but still in history (cache?)`);
      if (!row.deleted && shown?.version !== row.version)
        problems.push(`${t.message_id}: history shows version ${shown?.version}, Postgres ${row.version}`);
    }
    const rec = await reconcile(scenario.db, allRecords);

    writeFigures({
      id: "6b-concurrent-edits-deletes",
      title: "100 concurrent edits and deletes of the same 4 messages",
      fault: "none (contention on 4 messages of one session)",
      load: `${EDITS_DELETES} requests at once: per message 12–13 edits at version 1, 10–12 unconditional, 0 or 3 deletes`,
      figures: {
        requests: all.requests,
        ok: all.ok,
        editWins,
        deleteWins,
        versionConflicts: result.records.filter((r) => r.code === "version_conflict").length,
        sessionBusy: all.sessionBusy,
        busyRatio: Math.round((all.sessionBusy / all.requests) * 1000) / 1000,
        notFound: result.records.filter((r) => r.code === "message_not_found").length,
        fiveXx: all.fiveXx,
        network: all.networkErrors,
        maxLatencyMs: all.maxLatencyMs,
        ...reconciliationFigures(rec),
      },
      invariants: [
        {
          name: "no 5xx",
          ok: all.fiveXx === 0 && all.networkErrors === 0,
          detail: JSON.stringify(all.byStatus),
        },
        {
          name: "only 200, 409 version_conflict/session_busy, 404 message_not_found",
          ok: unexpected.length === 0,
          detail: JSON.stringify(summarize(unexpected).byStatus),
        },
        {
          name: "one winner per version; deletes stick; events match",
          ok: problems.length === 0,
          detail: sample(problems),
        },
        reconciled.gapless(rec),
        reconciled.oneEventPerChange(rec),
      ],
      notes: [`statuses: ${JSON.stringify(all.byStatus)}`],
      durationSeconds: Math.round((Date.now() - t0) / 1000),
    });
    if (result.stepErrors.length) throw new Error(result.stepErrors[0]);

    expect(all.fiveXx, JSON.stringify(all.byStatus)).toBe(0);
    expect(all.networkErrors).toBe(0);
    expect(summarize(unexpected).byStatus).toEqual({});
    expect(editWins + deleteWins).toBeGreaterThan(0);
    expect(problems).toEqual([]);
    expect(rec.seqGaps).toEqual([]);
    expect(rec.countMismatches).toEqual([]);
    expect(rec.eventProblems).toEqual([]);
  }, 120_000);
});
