/**
 * The "limit path" write: the durable writes of one POST /messages/post (session row update, two messages, two
 * outbox rows, the completed idempotency record) as ONE SQL statement, plus ONE Redis pipeline (the session entry
 * and the history entry, in the product's format). No framework, no validation, no responder. Its rows and columns must stay those
 * of the product's `append_session_change_claim` (layers/chat/db/chat-store.ts), or the reference does less work
 * than a POST: tests/integration/bench-raw-write.test.ts compares the two.
 */
import { createCipheriv, createHash, randomBytes, randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type pg from "pg";
import { generationStamp } from "../../layers/chat/cache/session-cache.ts";
import { historyLines, historyText } from "../../layers/chat/chat/history-text.ts";
import { toSession } from "../../layers/chat/db/rows.ts";
import type { BenchSession } from "./sessions.ts";

const SESSION_COLUMNS =
  "session_id, user_id, encode(token_hash, 'hex') AS token_hash, metadata, created_at, updated_at, last_seq, message_count, generation, suggestions";
const REPLY = (text: string) => `I hear you: "${text}". Tell me more, or type 'help' to see what I can do.`;
const SUGGESTIONS = JSON.stringify(["Tell me more", "Summarize our conversation", "What can you do?"]);
const TTL = 300;
/** The product's default IDEMPOTENCY_TTL_SECONDS. */
const IDEMPOTENCY_TTL_SECONDS = 86_400;

// As the product's: a generation from the change's time (bug 146), and the record names the messages the post
// inserted (`message_ids`, which an edit or delete of them uses to withdraw the stored response).
export const RAW_WRITE = `
WITH s AS (
  UPDATE sessions
     SET generation = GREATEST(generation + 1, floor(extract(epoch FROM $3::timestamptz) * 1000)::bigint),
         updated_at = $3, last_seq = $4, message_count = message_count + 2, suggestions = $5::jsonb
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
  INSERT INTO idempotency_records
         (scope, idempotency_key, request_hash, status, status_code, response, locked_until, expires_at, message_ids)
  SELECT $16, $17, $18, 'completed', 201, $19::jsonb, now(), now() + make_interval(secs => $20::int),
         ARRAY[$6::uuid, $9::uuid] FROM s
)
SELECT * FROM s`;

export interface Msg {
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

export interface RawSession extends BenchSession {
  generation: number;
  lastSeq: number;
  history: Msg[];
  /** Bytes of the session's history entry in Redis, once the first post wrote it. */
  historyEntryBytes?: number;
}

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
export async function createRawSessions(pool: Pick<pg.Pool, "query">, n: number): Promise<RawSession[]> {
  const at = new Date().toISOString();
  const rows: RawSession[] = Array.from({ length: n }, () => {
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
  return rows;
}

/** One raw write: the statement, then (with `redis`) the pipeline. */
export async function rawPost(
  pool: Pick<pg.Pool, "query">,
  redis: Redis | null,
  s: RawSession,
  content: string,
): Promise<void> {
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
      IDEMPOTENCY_TTL_SECONDS,
    ],
  });
  const row = res.rows[0];
  if (!row) throw new Error("raw write matched no session row");
  s.generation = Number(row.generation);
  s.lastSeq += 2;
  s.history.push(user, bot);
  if (redis) {
    // The product's entries (layers/chat/cache/session-cache.ts): "<16-digit stamp>|<json>". The history is written
    // whole once, then extended in place as the product's append script does (the new lines over the closing "\n]",
    // the new stamp over the old): SETting the whole history each post sent up to 16 KB a POST never sends.
    const stamp = generationStamp(s.generation);
    const [sKey, hKey] = [`chat:{${s.id}}:s`, `chat:{${s.id}}:h`];
    const pipeline = redis.pipeline().set(sKey, `${stamp}|${JSON.stringify(toSession(row))}`, "EX", TTL);
    if (s.historyEntryBytes) {
      const add = `,\n${historyLines([user, bot])}\n]`;
      pipeline
        .setrange(hKey, s.historyEntryBytes - 2, add)
        .setrange(hKey, 0, stamp)
        .expire(hKey, TTL);
      s.historyEntryBytes += Buffer.byteLength(add) - 2;
    } else {
      const entry = `${stamp}|${historyText(s.history)}`;
      pipeline.set(hKey, entry, "EX", TTL);
      s.historyEntryBytes = Buffer.byteLength(entry);
    }
    await pipeline.exec();
  }
}
