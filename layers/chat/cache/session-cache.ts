import type { Redis } from "ioredis";
import { historyLines, historyText, parseHistoryText } from "../chat/history-text.ts";
import type { Message, SessionRecord } from "../chat/types.ts";
import { withTimeout } from "../timeout.ts";
import type { RedisCommand } from "./redis-client.ts";

/**
 * Per-session cache entries, each stamped with the session generation it was read at ("<gen>|<json>", the
 * generation zero-padded to 16 digits so a script can rewrite it in place). The session entry only moves forward
 * (a Lua check), and history is valid only at the session entry's generation, so a slow reader can never put back
 * state older than what a writer already stored.
 */
export interface CachedSession {
  session: SessionRecord;
  /** The whole non-deleted history at session.generation, when cached (parsed on first access). */
  readonly history: Message[] | null;
  /** The same history as stored (history-text.ts), for pages cut without parsing. */
  historyText: string | null;
  /** When only the end of a long history was read (a post, a poll): its newest messages. */
  newest?: HistoryLines | null;
  /** When only the start of a long history was read (a first page): its oldest messages. */
  oldest?: HistoryLines | null;
}

/** Digits of a stamped generation: Number.MAX_SAFE_INTEGER has 16. */
const GENERATION_DIGITS = 16;
const ERASED_GENERATION = String(Number.MAX_SAFE_INTEGER);
/** A session entry that only holds a generation: a miss for readers, a floor for fills. */
const PLACEHOLDER = "null";

/** A generation as entries are stamped with it: fixed width, so the stamp of a history entry is its first 16 bytes. */
export function generationStamp(generation: number): string {
  if (!Number.isSafeInteger(generation) || generation < 0)
    throw new RangeError(`bad generation ${generation}`);
  return String(generation).padStart(GENERATION_DIGITS, "0");
}

/**
 * The start of every write-through script: returns 0 (writes nothing) if the session entry KEYS[1] already holds
 * a newer generation than ARGV[1], else stores ARGV[1] .. '|' .. ARGV[2] there with the TTL in ARGV[ttlArg].
 */
const SESSION_FORWARD = (ttlArg: number) => `
local cur = redis.call('GET', KEYS[1])
if cur then
  local cg = tonumber(string.match(cur, '^(%d+)|'))
  if cg and cg > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[${ttlArg}])`;

/**
 * Stores the session entry (SESSION_FORWARD) and the history entry ARGV[3], stamped by the caller: a history
 * concatenated in Lua would be one more copy of the whole text inside Redis. An empty ARGV[3] deletes the history.
 * KEYS session, history; ARGV stamp, session json, history entry, TTLs.
 */
const FILL_IF_NEWER = `${SESSION_FORWARD(4)}
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[5])
else
  redis.call('DEL', KEYS[2])
end
return 1`;

/**
 * After a change that only appended messages: moves the session entry forward (as FILL_IF_NEWER) and, if the
 * history entry is the one of the generation the change started from, extends it in place: the new lines go over
 * its closing "\n]" and the new stamp over the old one (SETRANGE), so the script's cost does not grow with the
 * history (reading a 16 KB entry into Lua and writing it back cost ≈ 100 µs of Redis's one thread per post). Any
 * other history entry is deleted, for a reader to refill from Postgres, and so is one the new lines would make
 * longer than ARGV[7] bytes. A history already at the new generation is kept as it is: this append's own earlier
 * attempt (a retry after a timeout) or a reader's fill from Postgres, either way that generation's history.
 * KEYS session, history; ARGV stamp, session json, previous stamp, new lines, TTLs, max history bytes.
 */
const APPEND_IF_AT = `${SESSION_FORWARD(5)}
local head = redis.call('GETRANGE', KEYS[2], 0, ${GENERATION_DIGITS + 2})
if string.sub(head, ${GENERATION_DIGITS + 1}) == '|[\\n' then
  local stamp = string.sub(head, 1, ${GENERATION_DIGITS})
  if stamp == ARGV[1] then return 1 end
  local len = redis.call('STRLEN', KEYS[2])
  if stamp == ARGV[3] and len >= ${GENERATION_DIGITS + 5}
     and redis.call('GETRANGE', KEYS[2], -2, -1) == '\\n]' then
    local add = ARGV[4]
    if add ~= '' and len > ${GENERATION_DIGITS + 5} then add = ',\\n' .. add end
    if len + #add > tonumber(ARGV[7]) then
      redis.call('DEL', KEYS[2])
      return 1
    end
    redis.call('SETRANGE', KEYS[2], len - 2, add .. '\\n]')
    redis.call('SETRANGE', KEYS[2], 0, ARGV[1])
    redis.call('EXPIRE', KEYS[2], ARGV[6])
    return 1
  end
end
redis.call('DEL', KEYS[2])
return 1`;

const keys = (sessionId: string) => [`chat:{${sessionId}}:s`, `chat:{${sessionId}}:h`] as const;

/**
 * Bytes read of one end of a history entry: enough for a post's responder context or a page in most sessions, so
 * a request does not move a history of up to 500 messages through Redis and the network to use a few lines of it.
 */
export const HISTORY_END_BYTES = 32 * 1024;

/**
 * What is read of a session's cache entries: the whole of both, the session entry alone (reads of the session, its
 * erasure), or the session entry and one end of the history: its newest messages ("tail": a post's responder
 * context, a client polling for new messages) or its oldest ("head": the first page; edits and deletes, which need
 * the whole history but read ahead no more than this end before they are authorized, and the rest only after).
 */
export type SessionRead = "whole" | "session" | "tail" | "head";

/**
 * The commands that read `read` of a session's entries, for a caller that sends them in a round trip of its own
 * (the rate limiter's); their replies, in order, are PrefetchedEntries.values. The tail's three reads are not one
 * atomic snapshot: a change between them can only make the session entry older than what the history shows (entries
 * only move forward), so a page cut from it is at worst newer, and a post planned from it is refused by the
 * generation check of its statement, then planned again under the lock. A head is one read, stamp included.
 */
export function sessionReadCommands(
  sessionId: string,
  read: SessionRead,
  bytes = HISTORY_END_BYTES,
): RedisCommand[] {
  const [s, h] = keys(sessionId);
  if (read === "whole") return [["mget", s, h]];
  if (read === "session") return [["get", s]];
  if (read === "head")
    return [
      ["get", s],
      ["getrange", h, 0, bytes - 1],
    ];
  return [
    ["get", s],
    ["getrange", h, 0, GENERATION_DIGITS + 2],
    ["getrange", h, -bytes, -1],
  ];
}

/** The replies of sessionReadCommands(sessionId, read), read just now by someone else's round trip. */
export interface PrefetchedEntries {
  sessionId: string;
  read: SessionRead;
  values: readonly unknown[];
  /** performance.now() when the commands were sent: CacheGuard refuses entries read before it cleared stale ones. */
  sentAt: number;
}

/** Messages at one end of a history that was not read whole: complete lines of its line form, oldest first. */
export interface HistoryLines {
  /** The lines, joined by ",\n" as in the entry ("" for none). */
  lines: string;
  count: number;
}

/** A lookup from the session entry `s` and what `history` finds of the history at its generation. */
function hit(
  s: string | null | undefined,
  history: (session: { generation: number }) => {
    text?: string | null;
    newest?: HistoryLines;
    oldest?: HistoryLines;
  },
): CacheLookup {
  const session = split(s ?? null);
  if (!session || session.json === PLACEHOLDER) return { kind: "miss" };
  if (String(session.generation) === ERASED_GENERATION) return { kind: "erased" };
  const { text = null, newest = null, oldest = null } = history(session);
  let parsed: Message[] | undefined;
  return {
    kind: "hit",
    value: {
      session: JSON.parse(session.json) as SessionRecord,
      // a session or suggestions read never needs the history: parse it only when asked
      get history() {
        if (text === null) return null;
        parsed ??= parseHistoryText(text);
        return parsed;
      },
      historyText: text,
      newest,
      oldest,
    },
  };
}

/** The first bytes of a history entry at `generation`: its stamp and the line form's opening "[\n". */
const historyStart = (generation: number): string => `${generationStamp(generation)}|[\n`;

function linesOf(lines: string): HistoryLines {
  return { lines, count: lines === "" ? 0 : countLines(lines) };
}

function countLines(lines: string): number {
  let count = 1;
  for (let at = lines.indexOf(",\n"); at >= 0; at = lines.indexOf(",\n", at + 2)) count++;
  return count;
}

function split(entry: string | null): { generation: number; json: string } | null {
  if (!entry) return null;
  const bar = entry.indexOf("|");
  return bar > 0 ? { generation: Number(entry.slice(0, bar)), json: entry.slice(bar + 1) } : null;
}

export interface SessionCacheOptions {
  sessionTtlSeconds: number;
  historyTtlSeconds: number;
  /** A history entry longer than this (bytes, stamp included) is not stored: its session is read from Postgres. */
  historyMaxBytes: number;
  /** Bound on a pipeline or MULTI (ioredis's commandTimeout does not end those): a stalled server must not hang us. */
  batchTimeoutMs?: number;
}

export type CacheLookup = { kind: "hit"; value: CachedSession } | { kind: "erased" } | { kind: "miss" };

export class SessionCache {
  readonly #redis: Redis;
  readonly #opts: SessionCacheOptions;

  constructor(redis: Redis, opts: SessionCacheOptions) {
    this.#redis = redis;
    this.#opts = opts;
    redis.defineCommand("chatFillIfNewer", { numberOfKeys: 2, lua: FILL_IF_NEWER });
    redis.defineCommand("chatAppendIfAt", { numberOfKeys: 2, lua: APPEND_IF_AT });
  }

  /** One round trip: the session entry and, if it is at the same generation, the history. */
  async get(sessionId: string): Promise<CacheLookup> {
    return this.lookup(await this.#redis.mget(...keys(sessionId)));
  }

  /** Reads `read` of a session's entries (`bytes` of one end of the history) in a round trip of its own. */
  async read(sessionId: string, read: SessionRead, bytes?: number): Promise<CacheLookup> {
    if (read === "whole") return this.get(sessionId);
    return this.lookupPrefetched(await this.fetch(sessionId, read, bytes));
  }

  /** The replies of sessionReadCommands(), sent in a round trip of this cache's own. */
  async fetch(sessionId: string, read: SessionRead, bytes?: number): Promise<PrefetchedEntries> {
    const commands = sessionReadCommands(sessionId, read, bytes).map((c) => [...c]);
    const sentAt = performance.now();
    const replies = await this.#bounded(this.#redis.pipeline(commands).exec());
    const failed = replies?.find(([err]) => err);
    if (!replies || failed) throw failed?.[0] ?? new Error("Redis pipeline aborted");
    return { sessionId, read, values: replies.map(([, value]) => value), sentAt };
  }

  /** What the replies of sessionReadCommands() say, as get() would. */
  lookupPrefetched({ read, values }: PrefetchedEntries): CacheLookup {
    if (read === "whole") return this.lookup((values[0] ?? []) as (string | null)[]);
    if (read === "session") return hit(values[0] as string | null, () => ({}));
    if (read === "head") {
      const [s, head] = values as (string | null | undefined)[];
      return hit(s, (session) => {
        const stamped = historyStart(session.generation);
        if (!head?.startsWith(stamped)) return {};
        // "\n]" ends the entry only: lines hold no raw line break, and separators are ",\n"
        if (head.endsWith("\n]")) return { text: head.slice(GENERATION_DIGITS + 1) };
        const cut = head.lastIndexOf(",\n"); // the line after it may be cut
        return { oldest: linesOf(cut < stamped.length ? "" : head.slice(stamped.length, cut)) };
      });
    }
    const [s, head, tail] = values as (string | null | undefined)[];
    return hit(s, (session) => {
      const stamped = historyStart(session.generation);
      if (head !== stamped || !tail?.endsWith("\n]")) return {};
      // the whole entry fit: the same as a whole read
      if (tail.startsWith(stamped)) return { text: tail.slice(GENERATION_DIGITS + 1) };
      // cut inside a line; the first raw line break is the end of a separator, since lines hold none
      return { newest: linesOf(tail.slice(tail.indexOf("\n") + 1, -2)) };
    });
  }

  /** What get() makes of the session's two entries (an MGET of both). */
  lookup([s, h]: readonly (string | null | undefined)[]): CacheLookup {
    return hit(s, (session) => {
      const history = split(h ?? null);
      return { text: history && history.generation === session.generation ? history.json : null };
    });
  }

  /**
   * Stores the session (and its full history, if known and within historyMaxBytes) unless a newer generation is
   * already there.
   */
  async put(session: SessionRecord, history: Message[] | null): Promise<boolean> {
    const [sKey, hKey] = keys(session.session_id);
    const stamp = generationStamp(session.generation);
    const entry = history ? `${stamp}|${historyText(history)}` : "";
    const stored = await (
      this.#redis as unknown as { chatFillIfNewer: (...a: (string | number)[]) => Promise<number> }
    ).chatFillIfNewer(
      sKey,
      hKey,
      stamp,
      JSON.stringify(session),
      Buffer.byteLength(entry) > this.#opts.historyMaxBytes ? "" : entry,
      this.#opts.sessionTtlSeconds,
      this.#opts.historyTtlSeconds,
    );
    return stored === 1;
  }

  /**
   * After a change from `previousGeneration` that only appended `appended`: the new session entry, and the
   * history extended in Redis if it was cached at `previousGeneration` (else dropped). Never makes a
   * history longer than `maxMessages`: past it, the history entry is dropped.
   */
  async append(
    session: SessionRecord,
    previousGeneration: number,
    appended: readonly Message[],
    maxMessages: number,
  ): Promise<boolean> {
    if (session.message_count > maxMessages) return this.put(session, null);
    const [sKey, hKey] = keys(session.session_id);
    const stored = await (
      this.#redis as unknown as { chatAppendIfAt: (...a: (string | number)[]) => Promise<number> }
    ).chatAppendIfAt(
      sKey,
      hKey,
      generationStamp(session.generation),
      JSON.stringify(session),
      generationStamp(previousGeneration),
      historyLines(appended),
      this.#opts.sessionTtlSeconds,
      this.#opts.historyTtlSeconds,
      this.#opts.historyMaxBytes,
    );
    return stored === 1;
  }

  /**
   * Forget sessions so the next read goes to Postgres. Each entry becomes a placeholder at the session's
   * current generation, which readers treat as a miss but which still blocks a fill from an older snapshot;
   * a session that no longer exists (generation null) gets the erased tombstone.
   */
  async invalidate(sessions: { sessionId: string; generation: number | null }[]): Promise<void> {
    if (sessions.length === 0) return;
    const pipeline = this.#redis.pipeline() as ReturnType<Redis["pipeline"]> & {
      chatFillIfNewer: (...a: (string | number)[]) => unknown;
    };
    for (const { sessionId, generation } of sessions) {
      const [sKey, hKey] = keys(sessionId);
      if (generation === null) {
        pipeline.set(sKey, `${ERASED_GENERATION}|{}`, "EX", this.#opts.sessionTtlSeconds).del(hKey);
      } else {
        pipeline.chatFillIfNewer(
          sKey,
          hKey,
          generationStamp(generation),
          PLACEHOLDER,
          "",
          this.#opts.sessionTtlSeconds,
          1,
        );
      }
    }
    const replies = await this.#bounded(pipeline.exec());
    const failed = replies?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  /** After erasure: a tombstone newer than any generation, so no racing reader can refill the session. */
  async markErased(sessionId: string): Promise<void> {
    const [sKey, hKey] = keys(sessionId);
    await this.#bounded(
      this.#redis
        .multi()
        .set(sKey, `${ERASED_GENERATION}|{}`, "EX", this.#opts.sessionTtlSeconds)
        .del(hKey)
        .exec(),
    );
  }

  async ping(): Promise<void> {
    await this.#redis.ping();
  }

  /**
   * Replaces a connection that is up but does not answer (a half-open socket after a network fault: no FIN, no
   * RST): ioredis would keep sending down it until the kernel gives up, ≈ 15 minutes. One that is down already
   * reconnects by itself.
   */
  reconnect(): void {
    if (this.#redis.status === "ready") this.#redis.disconnect(true);
  }

  #bounded<T>(work: Promise<T>): Promise<T> {
    const ms = this.#opts.batchTimeoutMs ?? 200;
    return withTimeout(work, ms, () => new Error(`Redis batch timed out after ${ms} ms`));
  }
}
