/**
 * The "limit path" (bench/lib/raw-write.ts: the durable writes of one POST /messages/post as ONE SQL statement plus
 * ONE Redis pipeline) under load. Also the raw reads for the history benchmark (Redis GET of the history entry, SQL
 * SELECT of the page) and a bare HTTP server (the HTTP floor).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import pg from "pg";
import type { FunctionSpec } from "../../functions/manifest.ts";
import { type Runner, startRunner } from "../../local/server.ts";
import { runLoop } from "../lib/closed-loop.ts";
import {
  drainExplains,
  explainNext,
  installInstrumentation,
  readCounters,
  resetCounters,
} from "../lib/instrument.ts";
import { createRawSessions, type RawSession, rawPost } from "../lib/raw-write.ts";
import { contentFor, SessionRotation } from "../lib/sessions.ts";
import { serveWorker } from "../lib/worker-rpc.ts";

installInstrumentation();

const env = process.env;
const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: Number(env.DB_POOL_MAX ?? 16) });
pool.on("error", () => {});
const redis = env.REDIS_URL ? new Redis(env.REDIS_URL, { maxRetriesPerRequest: 1 }) : null;
redis?.on("error", () => {});
let server: Server | undefined;

const sessions: RawSession[] = [];

/** Sessions made directly in SQL (row + welcome message), as sessions/create leaves them. */
async function setup(args: { sessions: number }): Promise<number> {
  sessions.push(...(await createRawSessions(pool, args.sessions)));
  return sessions.length;
}

interface LoadArgs {
  concurrency: number;
  durationMs: number;
  maxOps: number;
  warmupMs: number;
  postsPerSession: number;
  keepSamples?: boolean;
  /** Index of the first session this run may use (runs never share sessions). */
  from: number;
}

async function write(args: LoadArgs) {
  const rotation = new SessionRotation(sessions.slice(args.from), args.concurrency, args.postsPerSession);
  resetCounters();
  const result = await runLoop(args, async (w, seq) => {
    await rawPost(pool, redis, rotation.next(w) as RawSession, contentFor(seq));
    return undefined;
  });
  return {
    ...result,
    sessionsUsed: rotation.consumed,
    sessionsReused: rotation.reused,
    counters: readCounters(),
  };
}

interface ReadArgs {
  concurrency: number;
  durationMs: number;
  maxOps: number;
  warmupMs: number;
  sessionIds: string[];
  limit: number;
  keepSamples?: boolean;
}

async function redisGet(args: ReadArgs) {
  if (!redis) throw new Error("raw Redis GET needs REDIS_URL");
  const ids = args.sessionIds;
  let bytes = 0;
  const result = await runLoop(args, async (_w, seq) => {
    const v = await redis.get(`chat:{${ids[seq % ids.length]}}:h`);
    if (!v) throw new Error("history entry missing from Redis");
    bytes = v.length;
    return undefined;
  });
  return { ...result, valueBytes: bytes };
}

async function sqlPage(args: ReadArgs) {
  const ids = args.sessionIds;
  let rows = 0;
  const result = await runLoop(args, async (_w, seq) => {
    const res = await pool.query({
      name: "raw_history_page",
      text: `SELECT message_id, session_id, seq, role, content, version, created_at, edited_at, reply_to FROM messages
              WHERE session_id = $1 AND seq > $2 AND deleted_at IS NULL ORDER BY seq LIMIT $3`,
      values: [ids[seq % ids.length], 0, args.limit + 1],
    });
    rows = res.rowCount ?? 0;
    return undefined;
  });
  return { ...result, rows };
}

/** A bare node:http server answering every request with the given body: the HTTP floor. */
async function bareHttp(args: { body: string }): Promise<{ url: string }> {
  const body = Buffer.from(args.body);
  server = createServer((_req, res) => {
    _req.resume();
    _req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
      res.end(body);
    });
  });
  await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

let stubRunner: Runner | undefined;
/**
 * The local runner serving one route with a stub handler that returns `body` (the same page the real handler
 * serves): the runner's own cost (API Gateway event, Lambda context, timeout, response mapping) over bare
 * node:http, without the handler's.
 */
async function stubRunnerHttp(args: {
  body: string;
  headers: Record<string, string>;
}): Promise<{ url: string }> {
  stubRunner = await startRunner({
    port: 0,
    schedules: false,
    log: () => {},
    functions: [{ ...STUB_SPEC }],
    loadHandler: async () => async () => ({ statusCode: 200, headers: args.headers, body: args.body }),
  });
  return { url: stubRunner.url };
}
const STUB_SPEC: FunctionSpec = {
  name: "stub",
  handler: "stub",
  description: "bench: returns a fixed body",
  route: { method: "GET", path: "/stub" },
  timeoutSeconds: 10,
  memoryMb: 512,
};

serveWorker(
  {
    setup,
    stubRunnerHttp,
    write,
    redisGet,
    sqlPage,
    bareHttp,
    counters: () => readCounters(),
    explainNext: (n: number) => explainNext(n),
    drainExplains: () => drainExplains(),
  },
  async () => {
    await stubRunner?.close();
    server?.close();
    server?.closeAllConnections();
    redis?.disconnect();
    await pool.end();
  },
);
