/**
 * The "limit path": the durable writes of one POST /messages/post (session row update, two messages, two
 * outbox rows, the idempotency record) as ONE SQL statement, plus ONE Redis pipeline (SET of the session entry
 * and of the history entry). No framework, no validation, no responder. Also the raw reads for the history
 * benchmark (Redis GET of the history entry, SQL SELECT of the page) and a bare HTTP server (the HTTP floor).
 */
import { createCipheriv, createHash, randomBytes, randomUUID } from "node:crypto";
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
import { type BenchSession, contentFor, SessionRotation } from "../lib/sessions.ts";
import { serveWorker } from "../lib/worker-rpc.ts";

installInstrumentation();

const env = process.env;
const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: Number(env.DB_POOL_MAX ?? 16) });
pool.on("error", () => {});
const redis = env.REDIS_URL ? new Redis(env.REDIS_URL, { maxRetriesPerRequest: 1 }) : null;
redis?.on("error", () => {});
let server: Server | undefined;

const SESSION_COLUMNS =
  "session_id, user_id, encode(token_hash, 'hex') AS token_hash, metadata, created_at, updated_at, last_seq, message_count, generation, suggestions";
const REPLY = (text: string) => `I hear you: "${text}". Tell me more, or type 'help' to see what I can do.`;
const SUGGESTIONS = JSON.stringify(["Tell me more", "Summarize our conversation", "What can you do?"]);
const TTL = 300;

const RAW_WRITE = `
WITH s AS (
  UPDATE sessions
     SET generation = generation + 1, updated_at = $3, last_seq = $4, message_count = message_count + 2,
         suggestions = $5::jsonb
   WHERE session_id = $1 AND generation = $2
  RETURNING ${SESSION_COLUMNS}
), m AS (
  INSERT INTO messages (message_id, session_id, seq, role, content, version, created_at, reply_to)
  SELECT v.* FROM s, (VALUES ($6::uuid, $1::uuid, $7::int, 'user', $8::text, 1, $3::timestamptz, NULL::uuid),
                             ($9::uuid, $1::uuid, $10::int, 'assistant', $11::text, 1, $3::timestamptz, $6::uuid)) AS v
), o AS (
  INSERT INTO outbox (event_id, session_id, event_type, event)
  SELECT v.* FROM s, (VALUES ($12::uuid, $1::uuid, 'chat.message.created', $13::jsonb),
                             ($14::uuid, $1::uuid, 'chat.message.created', $15::jsonb)) AS v
), i AS (
  INSERT INTO idempotency_records (scope, idempotency_key, request_hash, status, status_code, response, locked_until, expires_at)
  SELECT $16, $17, $18, 'completed', 201, $19::jsonb, now(), now() + interval '1 day' FROM s
)
SELECT * FROM s`;

interface Msg {
  message_id: string;
  session_id: string;
  seq: number;
  role: "user" | "assistant";
  content: string;
  version: number;
  created_at: string;
  edited_at: null;
  reply_to: string | null;
}

interface RawSession extends BenchSession {
  generation: number;
  lastSeq: number;
  history: Msg[];
}

const sessions: RawSession[] = [];

const event = (m: Msg, at: string) => ({
  specversion: "1.0",
  id: randomUUID(),
  source: "/chat-backend",
  type: "chat.message.created",
  subject: m.session_id,
  time: at,
  datacontenttype: "application/json",
  dataschema: "https://chat-backend.example/schemas/events/v1/chat.message.created.json",
  dataversion: "1",
  data: {
    session_id: m.session_id,
    message_id: m.message_id,
    seq: m.seq,
    role: m.role,
    version: 1,
    content: m.content,
    reply_to: m.reply_to,
  },
});

function encrypt(key: string, value: unknown) {
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", createHash("sha256").update(key).digest(), iv);
  const data = Buffer.concat([c.update(JSON.stringify(value), "utf8"), c.final()]);
  return { iv: iv.toString("base64"), tag: c.getAuthTag().toString("base64"), data: data.toString("base64") };
}

/** Sessions made directly in SQL (row + welcome message), as sessions/create leaves them. */
async function setup(args: { sessions: number }): Promise<number> {
  const at = new Date().toISOString();
  const rows: RawSession[] = Array.from({ length: args.sessions }, () => {
    const id = randomUUID();
    const welcome: Msg = {
      message_id: randomUUID(),
      session_id: id,
      seq: 1,
      role: "assistant",
      content: "Hello! I'm the chat assistant. Ask me anything.",
      version: 1,
      created_at: at,
      edited_at: null,
      reply_to: null,
    };
    return {
      id,
      token: randomBytes(32).toString("base64url"),
      generation: 1,
      lastSeq: 1,
      history: [welcome],
    };
  });
  for (let i = 0; i < rows.length; i += 500) {
    const chunk = rows.slice(i, i + 500);
    await pool.query(
      `WITH s AS (
         INSERT INTO sessions (session_id, token_hash, created_at, updated_at, last_seq, message_count)
         SELECT id, decode(h, 'hex'), $3, $3, 1, 1 FROM unnest($1::uuid[], $2::text[]) AS u(id, h) RETURNING session_id)
       INSERT INTO messages (message_id, session_id, seq, role, content, created_at)
       SELECT m, s, 1, 'assistant', $5, $3 FROM unnest($4::uuid[], $1::uuid[]) AS w(m, s)`,
      [
        chunk.map((r) => r.id),
        chunk.map((r) => createHash("sha256").update(r.token).digest("hex")),
        at,
        chunk.map((r) => r.history[0]?.message_id),
        rows[0]?.history[0]?.content,
      ],
    );
  }
  sessions.push(...rows);
  return sessions.length;
}

async function rawPost(s: RawSession, content: string): Promise<void> {
  const at = new Date().toISOString();
  const user: Msg = {
    message_id: randomUUID(),
    session_id: s.id,
    seq: s.lastSeq + 1,
    role: "user",
    content,
    version: 1,
    created_at: at,
    edited_at: null,
    reply_to: null,
  };
  const bot: Msg = {
    ...user,
    message_id: randomUUID(),
    seq: s.lastSeq + 2,
    role: "assistant",
    content: REPLY(content),
    reply_to: user.message_id,
  };
  const events = [event(user, at), event(bot, at)];
  const idemKey = randomUUID();
  const scope = `messages-post:${s.id}`;
  const result = { message: user, reply: bot, suggestions: JSON.parse(SUGGESTIONS) };
  const res = await pool.query({
    name: "raw_post",
    text: RAW_WRITE,
    values: [
      s.id,
      s.generation,
      at,
      s.lastSeq + 2,
      SUGGESTIONS,
      user.message_id,
      user.seq,
      user.content,
      bot.message_id,
      bot.seq,
      bot.content,
      events[0]?.id,
      JSON.stringify(events[0]),
      events[1]?.id,
      JSON.stringify(events[1]),
      scope,
      createHash("sha256").update(`${scope}\n${idemKey}`).digest("hex"),
      createHash("sha256")
        .update(JSON.stringify({ session_id: s.id, content }))
        .digest("hex"),
      JSON.stringify(encrypt(`${scope}\n${idemKey}`, result)),
    ],
  });
  const row = res.rows[0];
  if (!row) throw new Error("raw write matched no session row");
  s.generation = Number(row.generation);
  s.lastSeq += 2;
  s.history.push(user, bot);
  if (redis) {
    const gen = s.generation;
    await redis
      .pipeline()
      .set(`chat:{${s.id}}:s`, `${gen}|${JSON.stringify(row)}`, "EX", TTL)
      .set(`chat:{${s.id}}:h`, `${gen}|${JSON.stringify(s.history)}`, "EX", TTL)
      .exec();
  }
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
  const pool = sessions.slice(args.from);
  const rotation = new SessionRotation(pool, args.concurrency, args.postsPerSession);
  resetCounters();
  const result = await runLoop(args, async (w, seq) => {
    await rawPost(rotation.next(w) as RawSession, contentFor(seq));
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
