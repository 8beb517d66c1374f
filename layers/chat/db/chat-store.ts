import type pg from "pg";
import { ChatError } from "../chat/errors.ts";
import type { Message, SessionRecord } from "../chat/types.ts";
import type { CloudEvent } from "../events/cloudevents.ts";
import { MESSAGE_COLUMNS, SESSION_COLUMNS, toMessage, toSession } from "./rows.ts";

/** Anything that runs a query: the pool (autocommit) or a client inside a transaction. */
export type Queryable = Pick<pg.Pool, "query"> | pg.PoolClient;

/**
 * The Idempotency-Key record written by the change it guards, in the same statement. `claim: true`: the
 * record is created here, completed (no separate claim round trip); a record already there for the key makes
 * the whole statement fail on the primary key (23505) and change nothing. `claim: false`: completes the
 * claim this request took beforehand, identified by its `token`; if that claim is no longer its own (its lock
 * ran out and a retry took the key over), the statement changes nothing and fails with request_in_progress.
 */
export interface IdempotencyCompletion {
  scope: string;
  keyHash: string;
  statusCode: number;
  response: unknown;
  claim: boolean;
  requestHash: string;
  ttlSeconds: number;
  /** With `claim: false`: the claim's token (claimIdempotencyKey's `locked_until`). */
  token?: string;
}

export interface NewMessage {
  message_id: string;
  seq: number;
  role: "user" | "assistant";
  content: string;
  reply_to: string | null;
}

/** One change to a session, applied atomically by one statement. */
export interface SessionChange {
  sessionId: string;
  /** The generation the change was computed from; the statement does nothing if it moved. */
  expectedGeneration: number;
  at: string;
  lastSeq: number;
  messageCountDelta: number;
  suggestions?: string[];
  inserts?: NewMessage[];
  edits?: { message_id: string; content: string }[];
  deleteMessageId?: string;
  events: CloudEvent[];
  idempotency?: IdempotencyCompletion;
  /** Whether to report older unpublished events of the session (only the Kafka publisher uses it). */
  checkBacklog?: boolean;
}

export interface AppliedChange {
  session: SessionRecord;
  /** Earlier events of this session still wait in the outbox: publish in order, not just ours. */
  backlog: boolean;
}

type IdempotencyMode = "none" | "claim" | "complete";

const idempotencyMode = (i: IdempotencyCompletion | undefined): IdempotencyMode =>
  i ? (i.claim ? "claim" : "complete") : "none";

/**
 * The CTE that writes the Idempotency-Key record with the change, gated on `s` (the row the change updated
 * or inserted), from parameter $p on: scope, key hash, status code, response[, request hash, TTL seconds].
 * Only the one needed is in the statement: each data-modifying CTE costs the executor even when it writes nothing.
 * `owned`: the record names the session `s` made (a create's, which the session's erase deletes); otherwise it
 * names the messages the change inserted (sessionUpdate's $7), whose later edit or delete withdraws its response.
 */
function idempotencyCte(mode: IdempotencyMode, p: number, owned = false): string {
  const [column, value] = owned
    ? ["session_id", "s.session_id"]
    : [
        "message_ids",
        "(SELECT array_agg(m.message_id) FROM jsonb_to_recordset($7::jsonb) AS m(message_id uuid))",
      ];
  if (mode === "complete")
    return `, idem AS (
  UPDATE idempotency_records SET status = 'completed', status_code = $${p + 2}, response = $${p + 3}::jsonb, ${column} = ${value}
    FROM s WHERE scope = $${p} AND idempotency_key = $${p + 1} AND locked_until = $${p + 4}::timestamptz
)`;
  if (mode === "claim")
    return `, idem AS (
  INSERT INTO idempotency_records
         (scope, idempotency_key, request_hash, status, status_code, response, locked_until, expires_at, ${column})
  SELECT $${p}, $${p + 1}, $${p + 4}, 'completed', $${p + 2}, $${p + 3}::jsonb, now(),
         now() + make_interval(secs => $${p + 5}::int), ${value}
    FROM s
)`;
  return "";
}

/**
 * An edit or a delete withdraws the stored responses of the posts that created the messages it changes ($8 the
 * edits, $9 the deleted message): a replay of such a post would hand back text its user has since deleted or
 * replaced. The record stays, so a retry of the post is not run again, as a claim held until the record expires
 * with its status code kept (a claim in progress has none): claimIdempotencyKey answers it replay_withdrawn, and a
 * previous release (after a rollback), which knows no withdrawn records, request_in_progress instead of failing.
 */
const WITHDRAW_REPLAYS = `
, withdrawn AS (
  UPDATE idempotency_records SET status = 'in_progress', locked_until = expires_at, response = NULL
    FROM s
   WHERE scope = 'messages-post:' || $1::text AND status = 'completed'
     AND message_ids && (ARRAY(SELECT (u->>'message_id')::uuid FROM jsonb_array_elements($8::jsonb) AS u) || $9::uuid)
)`;

function idempotencyValues(i: IdempotencyCompletion | undefined): unknown[] {
  if (!i) return [];
  const common = [i.scope, i.keyHash, i.statusCode, JSON.stringify(i.response)];
  return i.claim ? [...common, i.requestHash, i.ttlSeconds] : [...common, i.token];
}

/**
 * Completing a claim, the statement first locks it, if it is still this request's (same token, in progress):
 * `s` writes nothing without it. Locked first, so a takeover either committed before (and the claim is not
 * found) or waits for this statement and then finds the key completed. A change to a session locks the session's
 * row before the claim (`session`): the erase locks the session and then deletes its claims, so taking them the
 * other way round would deadlock with it.
 */
const claimHeld = (mode: IdempotencyMode, p: number, session: boolean) =>
  mode === "complete"
    ? `${session ? "locked AS (SELECT 1 FROM sessions WHERE session_id = $1 FOR UPDATE), " : ""}held AS (
  SELECT 1 FROM idempotency_records${session ? ", locked" : ""}
   WHERE scope = $${p} AND idempotency_key = $${p + 1} AND status = 'in_progress' AND locked_until = $${p + 4}::timestamptz
     FOR UPDATE OF idempotency_records
), `
    : "";
const ifHeld = (mode: IdempotencyMode, keyword: "AND" | "WHERE") =>
  mode === "complete" ? ` ${keyword} EXISTS (SELECT 1 FROM held)` : "";

/**
 * After a statement completing a claim wrote nothing: if the claim is no longer this request's, it fails with
 * request_in_progress; unless the session it changes is gone (an erase deletes its claims too), which the caller
 * answers as for any change to a session that no longer exists.
 */
async function assertClaimHeld(db: Queryable, i: IdempotencyCompletion, sessionId?: string): Promise<void> {
  const res = await db.query({
    name: "idempotency_claim_held",
    text: `SELECT EXISTS (SELECT 1 FROM idempotency_records
                           WHERE scope = $1 AND idempotency_key = $2 AND status = 'in_progress'
                             AND locked_until = $3::timestamptz) AS held,
                  $4::uuid IS NULL OR EXISTS (SELECT 1 FROM sessions WHERE session_id = $4::uuid) AS session`,
    values: [i.scope, i.keyHash, i.token, sessionId ?? null],
  });
  const { held, session } = res.rows[0] as { held: boolean; session: boolean };
  if (!held && session)
    throw new ChatError(
      "request_in_progress",
      "this request ran past its Idempotency-Key claim, which another request with the key now holds",
      { retryAfterSeconds: 1 },
    );
}

/** The generation `change` sets if it commits, as its statement computes it (sessionUpdate). */
export const generationAfter = (change: Pick<SessionChange, "expectedGeneration" | "at">): number =>
  Math.max(change.expectedGeneration + 1, Math.floor(Date.parse(change.at)));

/**
 * A change's new generation is its time in milliseconds (at least the old one plus one): `at` is at least a
 * millisecond past the session's `updated_at` (change-time.ts), so a session restored from a backup never hands
 * out again a generation it had before the restore. Redis, the clients' ETags and the consumers keep those: with
 * `+ 1` alone, the restored session's changes came back to them, and a cache entry of the lost state was taken for
 * the new one (bug 146).
 */
const sessionUpdate = (mode: IdempotencyMode, p: number) => `
${claimHeld(mode, p, true)}s AS (
  UPDATE sessions
     SET generation = GREATEST(generation + 1, floor(extract(epoch FROM $3::timestamptz) * 1000)::bigint),
         updated_at = $3, last_seq = $4,
         message_count = message_count + $5, suggestions = COALESCE($6::jsonb, suggestions)
   WHERE session_id = $1 AND generation = $2${ifHeld(mode, "AND")}
  RETURNING ${SESSION_COLUMNS}
), ins AS (
  INSERT INTO messages (message_id, session_id, seq, role, content, version, created_at, reply_to)
  SELECT m.message_id, $1, m.seq, m.role, m.content, 1, $3, m.reply_to
    FROM s, jsonb_to_recordset($7::jsonb) AS m(message_id uuid, seq int, role text, content text, reply_to uuid)
)`;

const OUTBOX_INSERT = (p: number) => `
ob AS (
  INSERT INTO outbox (event_id, session_id, event_type, event)
  SELECT (e->>'id')::uuid, $1, e->>'type', e FROM s, jsonb_array_elements($${p}::jsonb) AS e
)`;

// The backlog probe is an index lookup, but only the Kafka publisher needs it: skipped otherwise.
const BACKLOG = (p: number) =>
  `CASE WHEN $${p}::boolean THEN EXISTS (SELECT 1 FROM outbox_pending WHERE session_id = $1) ELSE false END AS backlog`;

/**
 * A delete ($9) tombstones the message: its text is wiped and its version bumped, so its deleted event is newer
 * than every event of it before. Its events that carry the text (created, edited) are redacted in the outbox, queued
 * or published and kept (found through outbox_message_idx): a queued one is still published (consumers count
 * creations and edits), with `content` empty. Only an event already read for publishing when the delete commits (a
 * relay batch, a request's fast path) can still reach the topic with the text. The redaction locks its rows in id
 * order, as the prune and the marks take theirs: found through the index, they would be locked in their physical
 * order, which drifts from id order (updates move rows), and a prune walking the same rows could deadlock with it.
 */
const DELETE_MESSAGE = `
, del AS (
  UPDATE messages AS t SET deleted_at = $3, content = '', version = t.version + 1
    FROM s WHERE t.message_id = $9 AND t.session_id = $1 AND t.deleted_at IS NULL
), redact AS (
  UPDATE outbox AS o SET event = jsonb_set(o.event, '{data,content}', '""')
   WHERE o.id = ANY(ARRAY(
     SELECT r.id FROM outbox AS r
      WHERE EXISTS (SELECT 1 FROM s)
        AND r.event_type IN ('chat.message.created', 'chat.message.edited')
        AND (r.event -> 'data' ->> 'message_id')::uuid = $9 AND r.session_id = $1
        AND r.event -> 'data' ->> 'content' <> ''
      ORDER BY r.id FOR NO KEY UPDATE OF r))
)`;

/** Any change: inserts, edits, a delete (`del`: whether it deletes; the edits' statement goes without). */
const applyChangeSql = (mode: IdempotencyMode, del: boolean) => `
WITH ${sessionUpdate(mode, 12)}, upd AS (
  UPDATE messages AS t SET content = u.content, version = t.version + 1, edited_at = $3
    FROM s, jsonb_to_recordset($8::jsonb) AS u(message_id uuid, content text)
   WHERE t.message_id = u.message_id AND t.session_id = $1 AND t.deleted_at IS NULL
)${del ? DELETE_MESSAGE : ""}${WITHDRAW_REPLAYS}, ${OUTBOX_INSERT(10)}${idempotencyCte(mode, 12)}
SELECT s.*, ${BACKLOG(11)} FROM s`;

/**
 * A change that only appends messages (every post): without the edit and delete CTEs, whose mere presence
 * costs the executor a third of the statement's time (they open the messages table and its indexes).
 */
const appendChangeSql = (mode: IdempotencyMode) => `
WITH ${sessionUpdate(mode, 10)}, ${OUTBOX_INSERT(8)}${idempotencyCte(mode, 10)}
SELECT s.*, ${BACKLOG(9)} FROM s`;

const MODES: IdempotencyMode[] = ["none", "claim", "complete"];
const APPLY_CHANGE = Object.fromEntries(MODES.map((m) => [m, applyChangeSql(m, false)]));
const APPLY_DELETE = Object.fromEntries(MODES.map((m) => [m, applyChangeSql(m, true)]));
const APPEND_CHANGE = Object.fromEntries(MODES.map((m) => [m, appendChangeSql(m)]));

/**
 * Applies a change if the session is still at the expected generation; null when it moved on. With
 * `idempotency.claim`, fails with 23505 (changing nothing) when the Idempotency-Key already has a record.
 */
export async function applySessionChange(db: Queryable, c: SessionChange): Promise<AppliedChange | null> {
  const mode = idempotencyMode(c.idempotency);
  const head = [
    c.sessionId,
    c.expectedGeneration,
    c.at,
    c.lastSeq,
    c.messageCountDelta,
    c.suggestions ? JSON.stringify(c.suggestions) : null,
    JSON.stringify(c.inserts ?? []),
  ];
  const tail = [JSON.stringify(c.events), c.checkBacklog ?? false, ...idempotencyValues(c.idempotency)];
  const del = c.deleteMessageId !== undefined;
  const appendOnly = !c.edits?.length && !del;
  const res = await db.query(
    appendOnly
      ? {
          name: `append_session_change_${mode}`,
          text: APPEND_CHANGE[mode] as string,
          values: [...head, ...tail],
        }
      : {
          name: `apply_session_change_${del ? "delete_" : ""}${mode}`,
          text: (del ? APPLY_DELETE : APPLY_CHANGE)[mode] as string,
          values: [...head, JSON.stringify(c.edits ?? []), c.deleteMessageId ?? null, ...tail],
        },
  );
  const row = res.rows[0];
  if (!row && mode === "complete")
    await assertClaimHeld(db, c.idempotency as IdempotencyCompletion, c.sessionId);
  return row ? { session: toSession(row), backlog: row.backlog === true } : null;
}

export interface NewSession {
  sessionId: string;
  userId: string | null;
  tokenHash: string;
  metadata: Record<string, unknown>;
  at: string;
  suggestions: string[];
  welcome: NewMessage;
  events: CloudEvent[];
  idempotency?: IdempotencyCompletion;
}

const insertSessionSql = (mode: IdempotencyMode) => `
WITH ${claimHeld(mode, 10, false)}s AS (
  INSERT INTO sessions (session_id, user_id, token_hash, metadata, created_at, updated_at, last_seq, message_count, suggestions)
  SELECT $1, $2, decode($3, 'hex'), $4::jsonb, $5, $5, 1, 1, $6::jsonb${ifHeld(mode, "WHERE")}
  RETURNING ${SESSION_COLUMNS}
), ins AS (
  INSERT INTO messages (message_id, session_id, seq, role, content, version, created_at)
  SELECT $7, $1, 1, 'assistant', $8, 1, $5 FROM s
), ${OUTBOX_INSERT(9)}${idempotencyCte(mode, 10, true)}
SELECT * FROM s`;
const INSERT_SESSION = Object.fromEntries(MODES.map((m) => [m, insertSessionSql(m)]));

/** With `idempotency.claim`, fails with 23505 (creating nothing) when the Idempotency-Key already has a record. */
export async function insertSession(db: Queryable, n: NewSession): Promise<SessionRecord> {
  const mode = idempotencyMode(n.idempotency);
  const res = await db.query({
    name: `insert_session_${mode}`,
    text: INSERT_SESSION[mode] as string,
    values: [
      n.sessionId,
      n.userId,
      n.tokenHash,
      JSON.stringify(n.metadata),
      n.at,
      JSON.stringify(n.suggestions),
      n.welcome.message_id,
      n.welcome.content,
      JSON.stringify(n.events),
      ...idempotencyValues(n.idempotency),
    ],
  });
  if (!res.rows[0] && mode === "complete") await assertClaimHeld(db, n.idempotency as IdempotencyCompletion);
  return toSession(res.rows[0]);
}

async function findSession(
  db: Queryable,
  sessionId: string,
  forUpdate = false,
): Promise<SessionRecord | null> {
  const res = await db.query({
    name: forUpdate ? "find_session_for_update" : "find_session",
    text: `SELECT ${SESSION_COLUMNS} FROM sessions WHERE session_id = $1${forUpdate ? " FOR UPDATE" : ""}`,
    values: [sessionId],
  });
  return res.rows[0] ? toSession(res.rows[0]) : null;
}

export interface SessionSnapshot {
  session: SessionRecord;
  /** The newest non-deleted messages in seq order, at most `limit`. */
  messages: Message[];
  /** True when `messages` is the session's whole non-deleted history. */
  complete: boolean;
  /** `messages` as the cache's line-form text (history-text.ts), when they came from there. */
  historyText?: string;
}

// $2: limit + 1 (one more tells the history is longer than limit); $3: limit; $4: the newest messages to read
// when it is longer, or when its content is over $5 bytes. The bytes are summed first (octet_length takes a toasted
// value's size from its header, without fetching or decompressing it), so a history over $5 costs Postgres a scan
// of at most $2 rows but sends only its newest $4 messages.
// The cache holds the content JSON-escaped, where a control character's 1 byte is 6: 1 MiB of them passed the
// bound here, yet no fill could store it, so every request of the session read it whole (6 MB of JSON, ≈ 100 ms).
// Content of more than $5 / 6 bytes is therefore also measured escaped (quotes not counted), newest first, only
// until it passes $5 (the window sum streams; EXISTS stops at the first row past it): about $5 bytes of JSON at most.
// OFFSET 0 keeps the planner from copying that test into the LIMIT that reads it (run once, not twice).
const SNAPSHOT = `
SELECT ${SESSION_COLUMNS}, n.newest,
  (SELECT coalesce(json_agg(m ORDER BY m.seq), '[]'::json) FROM (
     SELECT ${MESSAGE_COLUMNS} FROM messages
      WHERE session_id = s.session_id AND deleted_at IS NULL
      ORDER BY seq DESC
      LIMIT CASE WHEN n.newest THEN $4::int ELSE $2::int END
  ) m) AS messages
FROM sessions s CROSS JOIN LATERAL (
  SELECT coalesce(sum(octet_length(c.content)), 0) AS content_bytes FROM (
    SELECT content FROM messages
     WHERE session_id = s.session_id AND deleted_at IS NULL
     ORDER BY seq DESC LIMIT CASE WHEN s.message_count > $3::int THEN 0 ELSE $2::int END) c) b
CROSS JOIN LATERAL (
  SELECT CASE WHEN s.message_count > $3::int OR b.content_bytes > $5::bigint THEN true
    WHEN b.content_bytes * 6 <= $5::bigint THEN false
    ELSE EXISTS (SELECT 1 FROM (
      SELECT sum(octet_length(to_json(content)::text) - 2) OVER (ORDER BY seq DESC) AS escaped FROM messages
       WHERE session_id = s.session_id AND deleted_at IS NULL
       ORDER BY seq DESC LIMIT $2::int) e WHERE e.escaped > $5::bigint)
  END AS newest OFFSET 0) n
WHERE s.session_id = $1`;

/**
 * The session and its newest messages, read in one statement so both belong to one generation: the whole
 * history when it has at most `limit` messages and at most `maxBytes` bytes of content, escaped as in JSON
 * (complete), else its newest `newestWhenLong` (what a change of a long or large session needs: the responder's
 * context), not the whole of it on every request of such a session.
 */
export async function loadSnapshot(
  db: Queryable,
  sessionId: string,
  limit: number,
  newestWhenLong = limit,
  maxBytes = Number.MAX_SAFE_INTEGER,
): Promise<SessionSnapshot | null> {
  const newest = Math.min(newestWhenLong, limit);
  const res = await db.query({
    name: "load_snapshot",
    text: SNAPSHOT,
    values: [sessionId, limit + 1, limit, newest, maxBytes],
  });
  const row = res.rows[0];
  if (!row) return null;
  const session = toSession(row);
  const all = (row.messages as Record<string, unknown>[]).map(toMessage);
  const complete = row.newest === false && all.length <= limit;
  return { session, messages: all.length > limit ? all.slice(1) : all, complete };
}

/**
 * The session's generation now, or null once it is gone (erased or purged): whether a snapshot read from the cache
 * is current, and whether an empty page of a long session is its end or an erased session.
 */
export async function sessionGeneration(db: Queryable, sessionId: string): Promise<number | null> {
  const res = await db.query({
    name: "session_generation",
    text: "SELECT generation FROM sessions WHERE session_id = $1",
    values: [sessionId],
  });
  return res.rows[0] ? Number(res.rows[0].generation) : null;
}

export async function lockSnapshot(
  db: pg.PoolClient,
  sessionId: string,
  limit: number,
  newestWhenLong = limit,
  maxBytes = Number.MAX_SAFE_INTEGER,
): Promise<SessionSnapshot | null> {
  const locked = await findSession(db, sessionId, true);
  return locked ? loadSnapshot(db, sessionId, limit, newestWhenLong, maxBytes) : null;
}

export async function historyPage(
  db: Queryable,
  sessionId: string,
  afterSeq: number,
  limit: number,
): Promise<Message[]> {
  const res = await db.query({
    name: "history_page",
    text: `SELECT ${MESSAGE_COLUMNS} FROM messages
            WHERE session_id = $1 AND seq > $2 AND deleted_at IS NULL ORDER BY seq LIMIT $3`,
    values: [sessionId, afterSeq, limit],
  });
  return res.rows.map(toMessage);
}

/** What regenerating the reply to a user message depends on, besides the message itself. */
export interface RegenerateFacts {
  /** A live user message after it: only the latest user message may be regenerated. */
  laterUser: boolean;
  /** Its live reply, replaced in place if there is one. */
  reply: Message | null;
  /** The newest `contextMessages` live messages before it: the responder's context. */
  before: Message[];
  /** How many live messages follow it (its reply among them): with the session's count, how many precede it. */
  after: number;
}

/**
 * RegenerateFacts from Postgres, in one statement, for a session whose snapshot holds only its newest messages: an
 * older target's later messages, reply and context may lie outside them. Each part is a range of the session's
 * (session_id, seq) index.
 */
export async function regenerateFacts(
  db: Queryable,
  target: Pick<Message, "session_id" | "message_id" | "seq">,
  contextMessages: number,
): Promise<RegenerateFacts> {
  const res = await db.query({
    name: "regenerate_facts",
    text: `SELECT
      EXISTS (SELECT 1 FROM messages WHERE session_id = $1 AND seq > $2 AND role = 'user' AND deleted_at IS NULL)
        AS later_user,
      (SELECT row_to_json(r) FROM (
         SELECT ${MESSAGE_COLUMNS} FROM messages
          WHERE session_id = $1 AND seq > $2 AND reply_to = $3 AND role = 'assistant' AND deleted_at IS NULL
          ORDER BY seq LIMIT 1) r) AS reply,
      (SELECT coalesce(json_agg(b ORDER BY b.seq), '[]'::json) FROM (
         SELECT ${MESSAGE_COLUMNS} FROM messages
          WHERE session_id = $1 AND seq < $2 AND deleted_at IS NULL
          ORDER BY seq DESC LIMIT $4) b) AS before,
      (SELECT count(*) FROM messages WHERE session_id = $1 AND seq > $2 AND deleted_at IS NULL)::int AS after`,
    values: [target.session_id, target.seq, target.message_id, contextMessages],
  });
  const row = res.rows[0] as {
    later_user: boolean;
    reply: Record<string, unknown> | null;
    before: [];
    after: number;
  };
  return {
    laterUser: row.later_user,
    reply: row.reply ? toMessage(row.reply) : null,
    before: (row.before as Record<string, unknown>[]).map(toMessage),
    after: Number(row.after),
  };
}

export async function findMessage(
  db: Queryable,
  sessionId: string,
  messageId: string,
): Promise<(Message & { deleted: boolean }) | null> {
  const res = await db.query({
    name: "find_message",
    text: `SELECT ${MESSAGE_COLUMNS}, deleted_at IS NOT NULL AS deleted FROM messages WHERE message_id = $1 AND session_id = $2`,
    values: [messageId, sessionId],
  });
  const row = res.rows[0];
  return row ? { ...toMessage(row), deleted: row.deleted === true } : null;
}
