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
        ? original.call(this, config, values, wrapped)
        : original.call(this, config, wrapped);
    }
    const result = original.call(this, config, values, callback) as
      | Promise<{ rowCount?: number }>
      | undefined;
    result?.then?.(done, () => {});
    return result;
  };
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
