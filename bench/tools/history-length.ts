/**
 * Latency against history length, with the cache on: a post, the first page of history and the newest page (a
 * client polling with `after_seq`), each through the function's handler called directly (no HTTP), on sessions of
 * a few turns and of 240 turns (480 messages, near the cache's 500) with user messages of 300 and 2,000 characters.
 * A session's cost should not grow with its history where the request needs only one end of it.
 *
 * Usage: node bench/tools/history-length.ts [--tree DIR] [--reps N]
 *   --tree  a checkout whose functions and layers are measured (default: this one), e.g. a `git worktree` of an
 *           older commit, for an A/B on one machine
 *   --reps  posts per session shape (default 12; five reads of each kind follow each post)
 * Its own database (cloned from a migrated template, dropped after) on BENCH_DATABASE_URL's server, Redis db 11.
 */
import { randomUUID } from "node:crypto";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { benchDatabases, REDIS_URL } from "../lib/db.ts";
import { percentile } from "../lib/stats.ts";

const { values } = parseArgs({
  options: { tree: { type: "string" }, reps: { type: "string", default: "12" }, help: { type: "boolean" } },
  strict: true,
});
if (values.help) {
  process.stdout.write("usage: node bench/tools/history-length.ts [--tree DIR] [--reps N]\n");
  process.exit(0);
}
const reps = Math.min(Math.max(1, Number(values.reps)), 20); // 20 turns more stay within the cache's 500
const tree = resolve(values.tree ?? resolve(import.meta.dirname, "../.."));

const dbs = await benchDatabases();
const db = await dbs.create("historylength");
Object.assign(process.env, {
  DATABASE_URL: db.url,
  REDIS_URL,
  DB_POOL_MAX: "4",
  POWERTOOLS_LOG_LEVEL: "WARN",
  POWERTOOLS_METRICS_DISABLED: "true",
  RATE_LIMIT_PER_TOKEN: "1000000000",
  RATE_LIMIT_PER_IP: "1000000000",
  RATE_LIMIT_WINDOW_SECONDS: "1",
  AWS_REGION: "us-east-1",
});

type Handler = (e: APIGatewayProxyEventV2, c: Context) => Promise<APIGatewayProxyStructuredResultV2>;
const { findFunction } = await import(`${tree}/functions/manifest.ts`);
const { buildHttpApiEvent, newApiGatewayRequestId } = await import(`${tree}/local/api-gateway-event.ts`);
const { createLambdaContext } = await import(`${tree}/local/lambda-context.ts`);

async function fn(name: string) {
  const spec = findFunction(name);
  const { handler } = (await import(`${tree}/functions/${spec.handler}.ts`)) as { handler: Handler };
  return async (req: { method: string; url: string; body?: unknown; token?: string; path?: object }) => {
    const body = Buffer.from(req.body === undefined ? "" : JSON.stringify(req.body));
    const headers: Record<string, string[]> = { host: ["127.0.0.1"], "content-type": ["application/json"] };
    if (req.token) headers.authorization = [`Bearer ${req.token}`];
    if (body.length) headers["content-length"] = [String(body.length)];
    const event = buildHttpApiEvent(
      { method: req.method, url: req.url, headers, body, sourceIp: "127.0.0.1", protocol: "HTTP/1.1" },
      {
        routeKey: `${req.method} ${spec.route?.path}`,
        pathParameters: req.path ?? {},
        requestId: newApiGatewayRequestId(),
      },
    );
    const context = createLambdaContext(spec, {
      awsRequestId: randomUUID(),
      deadline: Date.now() + spec.timeoutSeconds * 1000,
      logStreamName: "bench",
    });
    const started = performance.now();
    const res = await handler(event, context);
    const ms = performance.now() - started;
    if ((res.statusCode ?? 500) >= 300) throw new Error(`${name} answered ${res.statusCode}: ${res.body}`);
    return { ms, json: JSON.parse(res.body ?? "null") };
  };
}

const create = await fn("sessions-create");
const post = await fn("messages-post");
const page = await fn("session-messages");
const text = (chars: number, i: number) =>
  `${i} ${"lorem ipsum dolor sit amet ".repeat(chars)}`.slice(0, chars);
const p50 = (xs: number[]) => percentile(Float64Array.from(xs).sort(), 50);

const rows: { label: string; post: number; first: number; newest: number; kb: number }[] = [];
for (const [turns, chars] of [
  [30, 50], // warm-up (JIT, connections), not reported
  [10, 300],
  [240, 300],
  [240, 2000],
] as const) {
  const created = await create({ method: "POST", url: "/sessions/create", body: {} });
  const id = created.json.session.session_id as string;
  const token = created.json.token as string;
  const send = (content: string) =>
    post({ method: "POST", url: "/messages/post", body: { session_id: id, content }, token });
  const read = (afterSeq: number) =>
    page({
      method: "GET",
      url: `/sessions/${id}/messages?after_seq=${afterSeq}`,
      token,
      path: { session_id: id },
    });
  let lastSeq = 0;
  for (let i = 0; i < turns; i++) lastSeq = (await send(text(chars, i))).json.reply.seq;
  const posts: number[] = [];
  const first: number[] = [];
  const newest: number[] = [];
  for (let i = 0; i < reps; i++) {
    const turn = await send(text(chars, turns + i));
    posts.push(turn.ms);
    lastSeq = turn.json.reply.seq;
    for (let j = 0; j < 5; j++) {
      first.push((await read(0)).ms);
      newest.push((await read(lastSeq - 2)).ms);
    }
  }
  const { rows: sized } = await db.pool.query(
    "SELECT coalesce(sum(octet_length(content)), 0)::int AS bytes FROM messages WHERE session_id = $1",
    [id],
  );
  if (turns === 30) continue;
  rows.push({
    label: `${turns + reps} turns, user messages of ${chars} chars`,
    post: p50(posts),
    first: p50(first),
    newest: p50(newest),
    kb: Math.round(sized[0].bytes / 1024),
  });
}

const { closePool } = await import(`${tree}/layers/chat/db/pool.ts`);
const { closeRedis } = await import(`${tree}/layers/chat/cache/redis-client.ts`);
await closeRedis();
await closePool();
await dbs.dropAll();

const [base] = rows;
const ms = (v: number, b: number) => `${v.toFixed(2)} (${(v / b).toFixed(2)} ×)`;
process.stdout.write(
  [
    `p50 ms (× the shortest session's), handlers called directly, cache on; ${reps} posts per row, 5 reads of each page after each; layers from ${tree}`,
    "",
    "| Session | message text KB | POST /messages/post | GET first page (after_seq=0) | GET newest page (polling) |",
    "|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.kb} | ${ms(r.post, base!.post)} | ${ms(r.first, base!.first)} | ${ms(r.newest, base!.newest)} |`,
    ),
    "",
  ].join("\n"),
);
process.exit(0);
