import { writeFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Redis } from "ioredis";
import { Kafka } from "kafkajs";
import pg from "pg";
import { type LatencySummary, summarize } from "./stats.ts";

/**
 * Bench-only instrumentation of a worker process (never of product code): counts every Postgres statement
 * (by prepared-statement name, else first SQL word) and every Redis command, and stamps the commit time of
 * each change statement's events (for commit-to-topic latency). Installed by patching the driver prototypes
 * in the worker process before the product code runs.
 */
export interface Counters {
  pg: Record<string, number>;
  redis: Record<string, number>;
  pgTotal: number;
  redisTotal: number;
}

const counters: Counters = { pg: {}, redis: {}, pgTotal: 0, redisTotal: 0 };
let cpuAtReset = process.cpuUsage();
let wallAtReset = performance.now();
/** Round-trip time (ms) of each statement / command as Node sees it, by name; capped per name. */
let timings: Record<string, number[]> = {};
const MAX_TIMINGS = 50_000;
function time(name: string, ms: number): void {
  const list = timings[name];
  if (!list) timings[name] = [ms];
  else if (list.length < MAX_TIMINGS) list.push(ms);
}
/** event id → epoch ms (high resolution) at which the autocommit statement carrying it returned. */
const commits = new Map<string, number>();
/** event id → epoch ms at which the product's producer got the broker's ack for the record carrying it. */
const acks = new Map<string, number>();
let recordCommits = false;
const LOOP_RESOLUTION_MS = 10;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
/** The histogram's values include the sampling interval itself: report the delay beyond it. */
const beyond = (ns: number) => Math.max(0, Math.round(ns / 1e4) / 100 - LOOP_RESOLUTION_MS);

export const epochNow = () => performance.timeOrigin + performance.now();

/** The product's change statements (one per idempotency mode: `append_session_change_claim`, …). */
const CHANGE_STATEMENT = /^(append_session_change|apply_session_change|insert_session)_/;

function statementName(config: unknown): string {
  if (typeof config === "string") return firstWord(config);
  if (config && typeof config === "object") {
    const c = config as { name?: string; text?: string };
    return c.name ?? firstWord(c.text ?? "?");
  }
  return "?";
}
const firstWord = (sql: string) => sql.trim().split(/\s+/, 1)[0]?.toUpperCase() ?? "?";

/** The events JSON is the statement's one parameter holding an array of CloudEvents (found by shape, not position). */
function eventIds(config: unknown, values: unknown): string[] {
  const params = (Array.isArray(values) ? values : (config as { values?: unknown[] }).values) ?? [];
  const raw = params.find((v) => typeof v === "string" && v.startsWith("[{") && v.includes('"specversion"'));
  if (typeof raw !== "string") return [];
  try {
    return (JSON.parse(raw) as { id: string }[]).map((e) => e.id);
  } catch {
    return [];
  }
}

/**
 * EXPLAIN ANALYZE of the next few write statements (the product's change statements, the raw path's): Postgres'
 * own planning and execution time, away from the driver and the event loop. Each explained statement runs first
 * as `EXPLAIN (ANALYZE, BUFFERS)` inside BEGIN … ROLLBACK on the same connection, then for real, so the product
 * sees its normal result. Skipped inside a transaction of the product's (the locked retry path).
 */
const EXPLAINED =
  /^(append_session_change|apply_session_change|insert_session)_|^raw_post$|^load_snapshot$|^raw_history_page$/;
let explainLeft = 0;
const explained: Record<
  string,
  {
    planningMs: number;
    executionMs: number;
    sharedHit: number;
    sharedRead: number;
    nodes: Map<string, number>;
  }[]
> = {};
const inTransaction = new WeakSet<object>();

export interface ExplainSummary {
  n: number;
  planningMsP50: number;
  executionMsP50: number;
  executionMsP90: number;
  /** Buffers touched per statement (shared hit + read), median. */
  buffersP50: number;
  /**
   * The plan's costliest parts (a node's own time: total minus children's, × loops; a trigger's time; the rest of the
   * execution time), averaged over every explained run, ms per run.
   */
  nodes: { node: string; msPerRun: number }[];
}

/** Explains the next `n` matching statements this process runs. */
export function explainNext(n: number): void {
  explainLeft = n;
}

export function drainExplains(): Record<string, ExplainSummary> {
  const med = (xs: number[], q = 0.5) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return (
      Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN) * 1000) /
      1000
    );
  };
  const out: Record<string, ExplainSummary> = {};
  for (const [name, runs] of Object.entries(explained)) {
    out[name] = {
      n: runs.length,
      planningMsP50: med(runs.map((r) => r.planningMs)),
      executionMsP50: med(runs.map((r) => r.executionMs)),
      executionMsP90: med(
        runs.map((r) => r.executionMs),
        0.9,
      ),
      buffersP50: med(runs.map((r) => r.sharedHit + r.sharedRead)),
      nodes: topNodes(runs),
    };
    delete explained[name];
  }
  explainLeft = 0;
  return out;
}

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "CTE Name"?: string;
  "Function Name"?: string;
  "Subplan Name"?: string;
  "Actual Total Time"?: number;
  "Actual Loops"?: number;
  "Shared Hit Blocks"?: number;
  "Shared Read Blocks"?: number;
  Plans?: PlanNode[];
}

/** Each node's own time (its total minus its children's, times loops), keyed by a readable label. */
function ownTimes(node: PlanNode, into: Map<string, number>): void {
  const total = (n: PlanNode) => (n["Actual Total Time"] ?? 0) * (n["Actual Loops"] ?? 1);
  const children = node.Plans ?? [];
  const own = Math.max(0, total(node) - children.reduce((sum, c) => sum + total(c), 0));
  const on = node["Relation Name"] ?? node["Function Name"] ?? node["CTE Name"];
  const label = `${node["Node Type"]}${on ? ` ${on}` : ""}${node["Subplan Name"] ? ` [${node["Subplan Name"]}]` : ""}`;
  into.set(label, (into.get(label) ?? 0) + own);
  for (const c of children) ownTimes(c, into);
}

function topNodes(runs: { nodes: Map<string, number> }[]): { node: string; msPerRun: number }[] {
  const sum = new Map<string, number>();
  for (const r of runs) for (const [k, v] of r.nodes) sum.set(k, (sum.get(k) ?? 0) + v);
  return [...sum]
    .map(([node, ms]) => ({ node, msPerRun: Math.round((ms / runs.length) * 1000) / 1000 }))
    .sort((a, b) => b.msPerRun - a.msPerRun)
    .slice(0, 6);
}

type RawQuery = (config: unknown, values?: unknown) => Promise<{ rows: Record<string, unknown>[] }>;

/** BEGIN, EXPLAIN ANALYZE of the statement and ROLLBACK on this connection, one after the other; never rejects. */
async function explainFirst(
  client: object,
  original: RawQuery,
  name: string,
  config: unknown,
  values: unknown,
) {
  const c = (typeof config === "string" ? { text: config } : config) as { text?: string; values?: unknown[] };
  const params = (Array.isArray(values) ? values : c.values) ?? [];
  const run = (q: unknown, v?: unknown) => original.call(client, q, v);
  await run("BEGIN").catch(() => {});
  await run({ text: `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${c.text ?? ""}`, values: params })
    .then((res) => {
      type Explained = {
        Plan: PlanNode;
        "Planning Time": number;
        "Execution Time": number;
        Triggers?: { "Trigger Name": string; "Constraint Name"?: string; Time: number }[];
      };
      const plan = ((res.rows[0]?.["QUERY PLAN"] as Explained[] | undefined) ?? [])[0];
      if (!plan) return;
      const runs = explained[name] ?? [];
      explained[name] = runs;
      if (process.env.BENCH_PLAN_DUMP)
        writeFileSync(`${process.env.BENCH_PLAN_DUMP}/${name}.json`, JSON.stringify(plan, null, 1));
      const nodes = new Map<string, number>();
      ownTimes(plan.Plan, nodes);
      // Triggers (foreign-key checks) run after the plan and are not in its nodes; whatever is still left of the
      // execution time (executor start-up and shutdown) gets a row of its own, so the rows add up.
      let accounted = [...nodes.values()].reduce((a, b) => a + b, 0);
      for (const t of plan.Triggers ?? []) {
        const label = `Trigger ${t["Constraint Name"] ?? t["Trigger Name"]}`;
        nodes.set(label, (nodes.get(label) ?? 0) + t.Time);
        accounted += t.Time;
      }
      const rest = plan["Execution Time"] - accounted;
      if (rest > 0) nodes.set("(outside nodes and triggers)", rest);
      runs.push({
        nodes,
        planningMs: plan["Planning Time"],
        executionMs: plan["Execution Time"],
        sharedHit: plan.Plan["Shared Hit Blocks"] ?? 0,
        sharedRead: plan.Plan["Shared Read Blocks"] ?? 0,
      });
    })
    .catch(() => {});
  await run("ROLLBACK").catch(() => {});
}

let installed = false;

export function installInstrumentation(): void {
  if (installed) return;
  installed = true;
  loopDelay.enable();
  instrumentKafka();
  const proto = pg.Client.prototype as unknown as { query: (...a: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: unknown, config: unknown, values?: unknown, callback?: unknown) {
    const name = statementName(config);
    if (name === "BEGIN") inTransaction.add(this as object);
    else if (name === "COMMIT" || name === "ROLLBACK") inTransaction.delete(this as object);
    else if (explainLeft > 0 && EXPLAINED.test(name) && !inTransaction.has(this as object)) {
      explainLeft--;
      // the explained copy first, then the real statement: one query at a time on this connection
      const explaining = explainFirst(this as object, original as RawQuery, name, config, values);
      const later = explaining.then(() => counted(this, name, config, values, callback));
      return typeof callback === "function" || typeof values === "function" ? undefined : later;
    }
    return counted(this, name, config, values, callback);
  };
  /** The real query, counted, timed and (for change statements) commit-stamped. */
  function counted(client: unknown, name: string, config: unknown, values?: unknown, callback?: unknown) {
    counters.pg[name] = (counters.pg[name] ?? 0) + 1;
    counters.pgTotal++;
    const started = performance.now();
    const ids = recordCommits && CHANGE_STATEMENT.test(name) ? eventIds(config, values) : [];
    const done = (res: { rowCount?: number | null } | undefined) => {
      time(`pg ${name}`, performance.now() - started);
      if (ids.length === 0 || !res?.rowCount) return;
      const at = epochNow();
      for (const id of ids) commits.set(id, at);
    };
    if (typeof callback === "function" || typeof values === "function") {
      const cb = (typeof callback === "function" ? callback : values) as (e: unknown, r: unknown) => void;
      const wrapped = (err: unknown, res: { rowCount?: number }) => {
        if (!err) done(res);
        cb(err, res);
      };
      return typeof callback === "function"
        ? original.call(client, config, values, wrapped)
        : original.call(client, config, wrapped);
    }
    const result = original.call(client, config, values, callback) as
      | Promise<{ rowCount?: number }>
      | undefined;
    result?.then?.(done, () => {});
    return result;
  }
  const rproto = Redis.prototype as unknown as { sendCommand: (...a: unknown[]) => unknown };
  const send = rproto.sendCommand;
  rproto.sendCommand = function (this: unknown, ...args: unknown[]) {
    const [command, ...rest] = args as [{ name?: string } | undefined, ...unknown[]];
    const name = (command?.name ?? "?").toUpperCase();
    counters.redis[name] = (counters.redis[name] ?? 0) + 1;
    counters.redisTotal++;
    const started = performance.now();
    const out = send.call(this, command, ...rest) as Promise<unknown> | undefined;
    out?.then?.(
      () => time(`redis ${name}`, performance.now() - started),
      () => {},
    );
    return out;
  };
}

/** Wraps every kafkajs producer's sendBatch to stamp each record's ack time (by its ce_id header). */
function instrumentKafka(): void {
  const kproto = Kafka.prototype as unknown as { producer: (...a: unknown[]) => unknown };
  const make = kproto.producer;
  kproto.producer = function (this: unknown, ...args: unknown[]) {
    const producer = make.apply(this, args) as {
      sendBatch: (b: {
        topicMessages?: { messages: { headers?: Record<string, unknown> }[] }[];
      }) => Promise<unknown>;
    };
    const sendBatch = producer.sendBatch;
    producer.sendBatch = async (batch) => {
      const out = await sendBatch(batch);
      if (recordCommits) {
        const at = epochNow();
        for (const t of batch.topicMessages ?? [])
          for (const m of t.messages) {
            const id = m.headers?.ce_id;
            if (typeof id === "string") acks.set(id, at);
          }
      }
      return out;
    };
    return producer;
  };
}

export function resetCounters(): void {
  counters.pg = {};
  counters.redis = {};
  counters.pgTotal = 0;
  counters.redisTotal = 0;
  cpuAtReset = process.cpuUsage();
  wallAtReset = performance.now();
  timings = {};
  loopDelay.reset();
}

export interface CounterReport extends Counters {
  eventLoopDelayP99Ms: number;
  eventLoopDelayMeanMs: number;
  /** CPU time (user + system) this worker process used since the reset, and the wall time. */
  cpuMs: number;
  wallMs: number;
  /** Round-trip latency per statement / command name, as the worker saw it. */
  timings: Record<string, LatencySummary>;
}

export function readCounters(): CounterReport {
  const cpu = process.cpuUsage(cpuAtReset);
  return {
    cpuMs: Math.round((cpu.user + cpu.system) / 100) / 10,
    wallMs: Math.round(performance.now() - wallAtReset),
    timings: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, summarize(v)])),
    pg: { ...counters.pg },
    redis: { ...counters.redis },
    pgTotal: counters.pgTotal,
    redisTotal: counters.redisTotal,
    eventLoopDelayP99Ms: Math.round(beyond(loopDelay.percentile(99)) * 100) / 100,
    eventLoopDelayMeanMs: Math.round(beyond(loopDelay.mean) * 100) / 100,
  };
}

export function recordCommitTimes(on: boolean): void {
  recordCommits = on;
}

/** Returns and forgets the commit (and Kafka ack) stamps collected so far. */
export function drainCommitTimes(): { commits: Record<string, number>; acks: Record<string, number> } {
  const out = { commits: Object.fromEntries(commits), acks: Object.fromEntries(acks) };
  commits.clear();
  acks.clear();
  return out;
}
