import type { NewMessage } from "../db/chat-store.ts";
import type { Turn } from "../responders/responder.ts";
import { pageLength } from "./page-size.ts";
import type { Message } from "./types.ts";

/** The history after a change, computed in memory so the cache can be written through. */
export function applyToHistory(
  history: Message[],
  change: { inserts?: Message[]; edits?: Message[]; deleteMessageId?: string },
): Message[] {
  const edited = new Map((change.edits ?? []).map((m) => [m.message_id, m]));
  const next = history
    .filter((m) => m.message_id !== change.deleteMessageId)
    .map((m) => edited.get(m.message_id) ?? m);
  return [...next, ...(change.inserts ?? [])];
}

export const toTurns = (messages: Pick<Message, "role" | "content">[]): Turn[] =>
  messages.map((m) => ({ role: m.role, content: m.content }));

export function toMessage(sessionId: string, m: NewMessage, at: string): Message {
  return {
    message_id: m.message_id,
    session_id: sessionId,
    seq: m.seq,
    role: m.role,
    content: m.content,
    version: 1,
    created_at: at,
    edited_at: null,
    reply_to: m.reply_to,
  };
}

/**
 * A page of history by seq cursor: messages after `afterSeq`, at most `limit` and at most PAGE_MAX_BYTES of
 * JSON; `next_after_seq` is set when more follow.
 */
export function pageOf(history: readonly Message[], afterSeq: number, limit: number) {
  const rest = history.filter((m) => m.seq > afterSeq);
  const messages = rest.slice(0, pageLength(rest, 0, limit, messageBound, messageBytes));
  return {
    messages,
    next_after_seq: rest.length > messages.length ? (messages[messages.length - 1]?.seq ?? null) : null,
  };
}

// A message's JSON: its content, each UTF-16 unit at most 6 bytes (`\u0001`), plus under 512 bytes of ids,
// times, numbers and keys.
const messageBound = (m: Message) => m.content.length * 6 + 512;
const messageBytes = (m: Message) => Buffer.byteLength(JSON.stringify(m));
