import type pg from "pg";
import { type ReadRecord, readTopic } from "../../helpers/kafka-mock-cluster.ts";
import type { LoadRecord } from "../../helpers/load.ts";
import { sample } from "./figures.ts";
import { TOPIC } from "./stack.ts";

/**
 * End-of-scenario reconciliation of what clients were told against Postgres (and the topic):
 * - every acknowledged message id is in Postgres exactly once, in its session at the acknowledged seq;
 * - every session's seq is gapless (1..last_seq) and message_count matches;
 * - no half-written turn: every posted user message has its reply, every reply its user message;
 * - every committed change has exactly one event in the outbox (created per message, edited per version,
 *   deleted per tombstone, at the version the tombstone has, created per session) and no event describes a
 *   change that is not there;
 * - where Kafka ran, every outbox event id is on the topic, and each session's first copies come in order.
 */
export interface Reconciliation {
  /** Message ids the API acknowledged (2xx). */
  acknowledged: number;
  /** …of which found in Postgres in the acknowledged session and seq. */
  found: number;
  missing: string[];
  /** Posts (by unique tag) stored more than once. */
  duplicateTags: string[];
  /** Posts that got no 201 but whose turn is in Postgres (the answer was lost, the commit was not). */
  unacknowledgedCommitted: number;
  sessions: number;
  messages: number;
  seqGaps: string[];
  countMismatches: string[];
  halfWrittenTurns: string[];
  /** Changes Postgres holds (messages, sessions, edit versions, tombstones) = events expected. */
  committedChanges: number;
  outboxEvents: number;
  eventProblems: string[];
  topic?: {
    records: number;
    /** Outbox events found on the topic. */
    found: number;
    missing: number;
    /** Extra copies of an event id (at-least-once). */
    duplicates: number;
    /** Sessions whose first copies are not in outbox (commit) order, or whose message seqs go backwards. */
    orderViolations: string[];
    /** The first few outbox events not found on the topic (event id, outbox id, type), to trace them. */
    missingSample: string[];
  };
}

interface MsgRow {
  message_id: string;
  session_id: string;
  seq: number;
  role: string;
  content: string;
  version: number;
  deleted: boolean;
  reply_to: string | null;
}

interface EventRow {
  id: string;
  event_id: string;
  session_id: string;
  event_type: string;
  queued: boolean;
  data: { message_id?: string; version?: number; seq?: number };
}

const TAG = /^load message (\S+)$/;

export async function reconcile(
  db: pg.Pool,
  records: LoadRecord[],
  opts: { kafkaBootstrap?: string; topicTimeoutMs?: number } = {},
): Promise<Reconciliation> {
  const msgs = (
    await db.query<MsgRow>(
      `SELECT message_id, session_id, seq, role, content, version, deleted_at IS NOT NULL AS deleted, reply_to
         FROM messages`,
    )
  ).rows;
  const sessions = (
    await db.query<{ session_id: string; last_seq: number; message_count: number }>(
      "SELECT session_id, last_seq, message_count FROM sessions",
    )
  ).rows;
  const events = (
    await db.query<EventRow>(
      `SELECT id::text, event_id, session_id, event_type, event->'data' AS data,
              EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = outbox.id) AS queued
         FROM outbox ORDER BY outbox.id`,
    )
  ).rows;

  const byId = new Map(msgs.map((m) => [m.message_id, m]));

  // 1. acknowledged ids
  let acknowledged = 0;
  let found = 0;
  const missing: string[] = [];
  const ackedTags = new Set<string>();
  for (const r of records) {
    if (r.status < 200 || r.status >= 300 || !r.ids) continue;
    const seqs = r.meta?.seqs as number[] | undefined;
    if (typeof r.meta?.tag === "string") ackedTags.add(r.meta.tag);
    r.ids.forEach((id, i) => {
      acknowledged++;
      const m = byId.get(id);
      const sameSeq = seqs?.[i] === undefined || m?.seq === seqs[i];
      if (m && m.session_id === r.meta?.session && sameSeq) found++;
      else missing.push(`${r.op} ${id}${m ? ` (in ${m.session_id} seq ${m.seq})` : ""}`);
    });
  }

  // 2. each post's tag at most once; posts not acknowledged but committed
  const tagCount = new Map<string, number>();
  for (const m of msgs) {
    const tag = m.role === "user" ? TAG.exec(m.content)?.[1] : undefined;
    if (tag) tagCount.set(tag, (tagCount.get(tag) ?? 0) + 1);
  }
  const duplicateTags = [...tagCount].filter(([, n]) => n > 1).map(([t, n]) => `${t} ×${n}`);
  let unacknowledgedCommitted = 0;
  for (const t of tagCount.keys()) if (!ackedTags.has(t)) unacknowledgedCommitted++;

  // 3. gapless seq and counts per session
  const bySession = new Map<string, MsgRow[]>();
  for (const m of msgs) {
    const list = bySession.get(m.session_id) ?? [];
    list.push(m);
    bySession.set(m.session_id, list);
  }
  const seqGaps: string[] = [];
  const countMismatches: string[] = [];
  for (const s of sessions) {
    const list = (bySession.get(s.session_id) ?? []).sort((a, b) => a.seq - b.seq);
    const gapless = list.every((m, i) => m.seq === i + 1) && list.length === s.last_seq;
    if (!gapless) seqGaps.push(`${s.session_id}: ${list.length} messages, last_seq ${s.last_seq}`);
    const live = list.filter((m) => !m.deleted).length;
    if (live !== s.message_count)
      countMismatches.push(`${s.session_id}: message_count ${s.message_count}, live ${live}`);
  }

  // 4. half-written turns (turns are written by one statement: a user message and its reply, together)
  const halfWrittenTurns: string[] = [];
  const replyOf = new Map<string, MsgRow>();
  for (const m of msgs) if (m.role === "assistant" && m.reply_to) replyOf.set(m.reply_to, m);
  for (const m of msgs) {
    if (m.role === "user") {
      const reply = replyOf.get(m.message_id);
      if (!reply || reply.seq !== m.seq + 1) halfWrittenTurns.push(`user ${m.message_id} without its reply`);
    } else if (m.reply_to && byId.get(m.reply_to)?.role !== "user") {
      halfWrittenTurns.push(`reply ${m.message_id} without its user message`);
    } else if (!m.reply_to && m.seq !== 1) {
      halfWrittenTurns.push(`assistant ${m.message_id} at seq ${m.seq} answers nothing`);
    }
  }

  // 5. exactly one event per committed change, no event without its change
  const eventProblems: string[] = [];
  const count = new Map<string, number>();
  const bump = (k: string) => count.set(k, (count.get(k) ?? 0) + 1);
  const eventIds = new Set<string>();
  for (const e of events) {
    if (eventIds.has(e.event_id)) eventProblems.push(`event id ${e.event_id} twice in the outbox`);
    eventIds.add(e.event_id);
    if (e.event_type === "chat.session.created" || e.event_type === "chat.session.erased")
      bump(`${e.event_type}|${e.session_id}`);
    else if (e.event_type === "chat.message.edited" || e.event_type === "chat.message.deleted")
      bump(`${e.event_type}|${e.data.message_id}|${e.data.version}`);
    else bump(`${e.event_type}|${e.data.message_id}`);
  }
  let committedChanges = 0;
  const expectOne = (key: string) => {
    committedChanges++;
    const n = count.get(key) ?? 0;
    if (n !== 1) eventProblems.push(`${n} events for ${key}`);
    count.delete(key);
  };
  for (const s of sessions) expectOne(`chat.session.created|${s.session_id}`);
  for (const m of msgs) {
    expectOne(`chat.message.created|${m.message_id}`);
    // a delete is the message's last version, one past its last edit
    const edits = m.deleted ? m.version - 1 : m.version;
    for (let v = 2; v <= edits; v++) expectOne(`chat.message.edited|${m.message_id}|${v}`);
    if (m.deleted) expectOne(`chat.message.deleted|${m.message_id}|${m.version}`);
  }
  for (const [key, n] of count) eventProblems.push(`${n} event(s) without a committed change: ${key}`);

  const result: Reconciliation = {
    acknowledged,
    found,
    missing,
    duplicateTags,
    unacknowledgedCommitted,
    sessions: sessions.length,
    messages: msgs.length,
    seqGaps,
    countMismatches,
    halfWrittenTurns,
    committedChanges,
    outboxEvents: events.length,
    eventProblems,
  };

  // 6. the topic
  if (opts.kafkaBootstrap) {
    const want = new Set(events.map((e) => e.event_id));
    const records = await readTopic(opts.kafkaBootstrap, TOPIC, {
      timeoutMs: opts.topicTimeoutMs ?? 30_000,
      until: (recs) => {
        if (recs.length < want.size) return false;
        const seen = new Set(recs.map((r) => r.headers.ce_id));
        for (const id of want) if (!seen.has(id)) return false;
        return true;
      },
    });
    result.topic = topicFigures(events, records);
  }
  return result;
}

function topicFigures(events: EventRow[], records: ReadRecord[]): NonNullable<Reconciliation["topic"]> {
  const outboxOrder = new Map(events.map((e, i) => [e.event_id, i]));
  const seen = new Set<string>();
  let duplicates = 0;
  // per session (= record key, one partition), the first copy of each event in offset order
  const byPartition = new Map<number, ReadRecord[]>();
  for (const r of records) {
    const list = byPartition.get(r.partition) ?? [];
    list.push(r);
    byPartition.set(r.partition, list);
  }
  const firstCopies = new Map<string, { order: number; seq?: number; type: string }[]>();
  for (const list of byPartition.values()) {
    list.sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset)));
    for (const r of list) {
      const id = r.headers.ce_id ?? "";
      if (seen.has(id)) {
        duplicates++;
        continue;
      }
      seen.add(id);
      const order = outboxOrder.get(id);
      if (order === undefined || !r.key) continue;
      const value = JSON.parse(r.value ?? "{}") as { type: string; data: { seq?: number } };
      const perSession = firstCopies.get(r.key) ?? [];
      perSession.push({ order, seq: value.data?.seq, type: value.type });
      firstCopies.set(r.key, perSession);
    }
  }
  const orderViolations: string[] = [];
  for (const [session, list] of firstCopies) {
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1];
      const cur = list[i];
      if (!prev || !cur) continue;
      if (cur.order < prev.order) {
        orderViolations.push(`${session}: outbox #${cur.order} (${cur.type}) after #${prev.order}`);
        break;
      }
    }
    const created = list.filter((e) => e.type === "chat.message.created").map((e) => e.seq ?? 0);
    if (created.some((s, i) => i > 0 && s <= (created[i - 1] ?? 0)))
      orderViolations.push(`${session}: message seqs out of order`);
  }
  let foundOnTopic = 0;
  const missingSample: string[] = [];
  for (const e of events) {
    if (seen.has(e.event_id)) foundOnTopic++;
    else if (missingSample.length < 5)
      missingSample.push(
        `${e.event_id} (outbox #${e.id}, ${e.event_type}, ${e.queued ? "still queued" : "marked published"})`,
      );
  }
  return {
    records: records.length,
    found: foundOnTopic,
    missing: events.length - foundOnTopic,
    duplicates,
    orderViolations,
    missingSample,
  };
}

/** The reconciliation's figures for the report (counts, not lists). */
export function reconciliationFigures(r: Reconciliation): Record<string, number> {
  return {
    acknowledged: r.acknowledged,
    found: r.found,
    missing: r.missing.length,
    duplicates: r.duplicateTags.length,
    unacknowledgedCommitted: r.unacknowledgedCommitted,
    sessions: r.sessions,
    messages: r.messages,
    seqGaps: r.seqGaps.length,
    halfWrittenTurns: r.halfWrittenTurns.length,
    committedChanges: r.committedChanges,
    outboxEvents: r.outboxEvents,
    eventProblems: r.eventProblems.length,
    ...(r.topic
      ? {
          topicRecords: r.topic.records,
          topicFound: r.topic.found,
          topicMissing: r.topic.missing,
          topicDuplicates: r.topic.duplicates,
          topicOrderViolations: r.topic.orderViolations.length,
        }
      : {}),
  };
}

/** The invariants every scenario checks on its reconciliation, by name, so each test states only what it adds. */
export const reconciled = {
  acknowledged: (r: Reconciliation) => ({
    name: "every acknowledged id in Postgres",
    ok: r.missing.length === 0,
    detail: sample(r.missing),
  }),
  gapless: (r: Reconciliation) => ({
    name: "gapless seq per session",
    ok: r.seqGaps.length === 0,
    detail: sample(r.seqGaps),
  }),
  noDuplicates: (r: Reconciliation) => ({
    name: "no duplicate turn",
    ok: r.duplicateTags.length === 0,
    detail: sample(r.duplicateTags),
  }),
  oneEventPerChange: (r: Reconciliation) => ({
    name: "one outbox event per change",
    ok: r.eventProblems.length === 0,
    detail: sample(r.eventProblems),
  }),
};
