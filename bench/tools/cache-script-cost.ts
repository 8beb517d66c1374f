/**
 * Redis's own time per cache script, by history length: what one post's write-through (the append script), a
 * fill (a miss, an edit, a delete) and the rate limiter cost the one thread every client of a Redis shard shares.
 * Server-side time from `INFO commandstats` (the usec counter of EVALSHA/EVAL, read before and after each call),
 * so the network and the client are not in the figure. Run it on an idle Redis: other clients' scripts would count.
 *
 * Usage: node bench/tools/cache-script-cost.ts [--tree DIR] [--calls N]
 *   --tree  a checkout whose layers/chat is measured (default: this one), e.g. a `git worktree` of an older commit
 *   --calls appends (and fills) per history length (default 200)
 * Traffic goes to REDIS_URL (default redis://127.0.0.1:6379) only; keys are this run's own and deleted after.
 */
import { randomUUID } from "node:crypto";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import type { SessionCache } from "../../layers/chat/cache/session-cache.ts";
import type { Message, SessionRecord } from "../../layers/chat/chat/types.ts";
import { SLIDING_WINDOW_LUA } from "../../layers/chat/ratelimit/redis-limiter.ts";
import { percentile } from "../lib/stats.ts";

const { values } = parseArgs({
  options: { tree: { type: "string" }, calls: { type: "string", default: "200" }, help: { type: "boolean" } },
  strict: true,
});
if (values.help) {
  process.stdout.write("usage: node bench/tools/cache-script-cost.ts [--tree DIR] [--calls N]\n");
  process.exit(0);
}
const calls = Math.min(Math.max(1, Number(values.calls)), 5000);
const tree = resolve(values.tree ?? resolve(import.meta.dirname, "../.."));
const { SessionCache: Cache } = (await import(`${tree}/layers/chat/cache/session-cache.ts`)) as {
  SessionCache: typeof SessionCache;
};

const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { lazyConnect: true });
await redis.connect();
// no byte bound: the tool measures the scripts at every history length it builds
const cache = new Cache(redis, {
  sessionTtlSeconds: 600,
  historyTtlSeconds: 600,
  historyMaxBytes: 64 * 1024 * 1024,
});

/** Microseconds Redis spent in scripts so far (EVALSHA and the EVAL of a first call). */
async function scriptMicros(): Promise<number> {
  const stats = await redis.info("commandstats");
  let usec = 0;
  for (const m of stats.matchAll(/^cmdstat_eval(?:sha)?:calls=\d+,usec=(\d+)/gm)) usec += Number(m[1]);
  return usec;
}

async function measure(work: () => Promise<unknown>): Promise<number> {
  const before = await scriptMicros();
  await work();
  return (await scriptMicros()) - before;
}

function message(sessionId: string, seq: number, chars: number): Message {
  return {
    message_id: randomUUID(),
    session_id: sessionId,
    seq,
    role: seq % 2 ? "user" : "assistant",
    content: "lorem ipsum ".repeat(Math.ceil(chars / 12)).slice(0, chars),
    version: 1,
    created_at: new Date(Date.UTC(2026, 10, 26, 12, 0, seq)).toISOString(),
    edited_at: null,
    reply_to: null,
  };
}

/** The p-th percentile of unsorted samples. */
const pct = (xs: number[], p: number) => percentile(Float64Array.from(xs).sort(), p);
const rows: string[] = [];
const keys: string[] = [];
// message counts up to the cache's bound (500); 8,000 characters is the default MAX_CONTENT_CHARS
for (const [count, chars] of [
  [5, 250],
  [50, 250],
  [500, 250],
  [500, 8000],
] as const) {
  const id = randomUUID();
  keys.push(`chat:{${id}}:s`, `chat:{${id}}:h`);
  const history = Array.from({ length: count }, (_, i) => message(id, i + 1, chars));
  const session = (generation: number, n: number): SessionRecord => ({
    session_id: id,
    user_id: null,
    metadata: {},
    created_at: history[0]?.created_at as string,
    updated_at: history[0]?.created_at as string,
    last_seq: n,
    message_count: n,
    token_hash: "x".repeat(43),
    generation,
    suggestions: [],
  });
  const fills: number[] = [];
  const appends: number[] = [];
  let generation = 1;
  for (let i = 0; i < calls; i++) {
    // refill at the starting length every 10 appends, so the history stays about `count` long
    if (i % 10 === 0) fills.push(await measure(() => cache.put(session(++generation, count), history)));
    const turn = [message(id, count + 2 * i + 1, chars), message(id, count + 2 * i + 2, chars)];
    const from = generation++;
    appends.push(await measure(() => cache.append(session(generation, count + 2), from, turn, 1e9)));
  }
  const entry = await redis.strlen(`chat:{${id}}:h`);
  rows.push(
    `| ${count} × ${chars} chars | ${(entry / 1024).toFixed(1)} | ${pct(appends, 50)} | ${pct(appends, 90)} | ${pct(fills, 50)} |`,
  );
}

const limiterKey = `rl:bench-${randomUUID()}`;
keys.push(limiterKey);
const limiter: number[] = [];
for (let i = 0; i < calls; i++) {
  limiter.push(
    await measure(() => redis.eval(SLIDING_WINDOW_LUA, 1, limiterKey, 1_000_000, 1000, randomUUID())),
  );
}
await redis.del(...keys);
redis.disconnect();

process.stdout.write(
  [
    `Redis time per script call (µs, server side), ${calls} calls per row; layers from ${tree}`,
    "",
    "| History (messages × content) | entry KB, last | append (a post) p50 | append p90 | fill p50 |",
    "|---|---|---|---|---|",
    ...rows,
    "",
    `Rate limiter, one policy (sliding-window log, a large limit): p50 ${pct(limiter, 50)} µs, p90 ${pct(limiter, 90)} µs per call; a request checks two policies.`,
    "",
  ].join("\n"),
);
