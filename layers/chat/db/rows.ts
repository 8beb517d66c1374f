import type { Message, SessionRecord } from "../chat/types.ts";

/** Column lists and row mappers shared by the read and write SQL. */
export const SESSION_COLUMNS =
  "session_id, user_id, encode(token_hash, 'hex') AS token_hash, metadata, created_at, updated_at, last_seq, message_count, generation, suggestions";
export const MESSAGE_COLUMNS =
  "message_id, session_id, seq, role, content, version, created_at, edited_at, reply_to";

// The product's pool already returns timestamptz in this form (timestamps.ts); a Date or other text is converted.
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const iso = (v: Date | string | null): string | null =>
  v === null
    ? null
    : typeof v === "string" && ISO_UTC.test(v)
      ? v
      : (v instanceof Date ? v : new Date(v)).toISOString();

export function toSession(r: Record<string, unknown>): SessionRecord {
  return {
    session_id: r.session_id as string,
    user_id: (r.user_id as string | null) ?? null,
    metadata: (r.metadata as Record<string, unknown>) ?? {},
    created_at: iso(r.created_at as Date) as string,
    updated_at: iso(r.updated_at as Date) as string,
    last_seq: Number(r.last_seq),
    message_count: Number(r.message_count),
    token_hash: r.token_hash as string,
    generation: Number(r.generation),
    suggestions: (r.suggestions as string[]) ?? [],
  };
}

export function toMessage(r: Record<string, unknown>): Message {
  return {
    message_id: r.message_id as string,
    session_id: r.session_id as string,
    seq: Number(r.seq),
    role: r.role as Message["role"],
    content: r.content as string,
    version: Number(r.version),
    created_at: iso(r.created_at as Date) as string,
    edited_at: iso(r.edited_at as Date | null),
    reply_to: (r.reply_to as string | null) ?? null,
  };
}
