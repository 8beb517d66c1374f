import { type CachedSession, HISTORY_END_BYTES, type HistoryLines } from "../cache/session-cache.ts";
import type { SessionSnapshot } from "../db/chat-store.ts";
import {
  isLineForm,
  lastMessagesFromText,
  pageJsonFromNewest,
  pageJsonFromOldest,
  pageJsonFromText,
  parseHistoryText,
} from "./history-text.ts";
import type { Message, SessionRecord } from "./types.ts";

/**
 * What a request read of a session's cache entries (ChatService's AuthorizedSession), turned into what it needs:
 * a snapshot to plan a change from, or a page of history. Reads of one end of a long history hold only some of
 * its messages; these functions use them only where they provably hold what is asked.
 */
export interface ReadSession {
  session: SessionRecord;
  /** Whole non-deleted history at session.generation, when it was at hand. */
  readonly history: Message[] | null;
  /** The same history as the cache holds it (history-text.ts), when it came from the cache. */
  historyText?: string | null;
  /** Only the newest messages, when just the end of a long cached history was read (a post, a poll). */
  newest?: HistoryLines | null;
  /** Only the oldest messages, when just the start of a long cached history was read (a first page). */
  oldest?: HistoryLines | null;
}

/** A page from the end of the history that was read, or null if that end may not hold it. */
export function pageFromEnd(read: ReadSession, afterSeq: number, limit: number): string | null {
  if (read.newest) return pageJsonFromNewest(read.newest.lines, afterSeq, limit);
  if (read.oldest) return pageJsonFromOldest(read.oldest.lines, afterSeq, limit);
  return null;
}

/** Bytes of the history's start that likely hold `limit` + 1 lines, from the lines a smaller read held. */
export function headBytesFor(oldest: HistoryLines, limit: number): number {
  const perLine = oldest.count > 0 ? Buffer.byteLength(oldest.lines) / oldest.count : HISTORY_END_BYTES;
  return Math.ceil((limit + 1) * perLine * 1.25) + 64;
}

/** A page from what a read of the cache found of the history: all of it, or its start. */
export function pageFromCache(found: CachedSession, afterSeq: number, limit: number): string | null {
  if (found.historyText !== null && isLineForm(found.historyText))
    return pageJsonFromText(found.historyText, afterSeq, limit);
  return found.oldest ? pageJsonFromOldest(found.oldest.lines, afterSeq, limit) : null;
}

/** What a plan reads of the history: nothing past the newest `newest` messages, nor past `chars` characters. */
export interface NewestReads {
  newest?: number;
  chars?: number;
}

/**
 * What authorize() read, as a snapshot to plan a change from, if it holds the whole history, or, for a plan that
 * reads only the newest messages (`reads`), all of those it can read. From the cache's line-form text the
 * messages are parsed only if the plan reads them (a post reads only the newest few).
 */
export function authSnapshot(auth: ReadSession, reads: NewestReads): SessionSnapshot | null {
  const tail = auth.newest;
  if (tail && reads.newest !== undefined) {
    const messages = tail.count === 0 ? [] : parseHistoryText(`[${tail.lines}]`);
    // the responder stops at its character bound before it reaches a message older than these
    const chars = messages.reduce((n, m) => n + m.content.length, 0);
    if (tail.count >= reads.newest || (reads.chars !== undefined && chars >= reads.chars))
      return { session: auth.session, messages, complete: false };
  }
  const text = auth.historyText;
  if (text && isLineForm(text)) {
    return {
      session: auth.session,
      get messages() {
        return auth.history ?? [];
      },
      complete: true,
      historyText: text,
    };
  }
  const history = auth.history;
  return history ? { session: auth.session, messages: history, complete: true } : null;
}

/** The newest `n` messages of a snapshot (without parsing the rest when they came from the cache). */
export function newestMessages(snap: SessionSnapshot, n: number): Message[] {
  return snap.historyText ? lastMessagesFromText(snap.historyText, n) : snap.messages.slice(-n);
}
