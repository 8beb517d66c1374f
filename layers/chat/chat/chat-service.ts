import { randomUUID } from "node:crypto";
import type pg from "pg";
import type { CacheGuard } from "../cache/cache-guard.ts";
import type { PrefetchedEntries, SessionRead } from "../cache/session-cache.ts";
import type { Config } from "../config.ts";
import {
  type AppliedChange,
  applySessionChange,
  findMessage,
  generationAfter,
  historyPage,
  insertSession,
  loadSnapshot,
  lockSnapshot,
  type NewMessage,
  type Queryable,
  type RegenerateFacts,
  regenerateFacts,
  type SessionChange,
  type SessionSnapshot,
  sessionGeneration,
} from "../db/chat-store.ts";
import { eraseSession } from "../db/erase-store.ts";
import {
  claimIdempotencyKey,
  type IdempotencyRequest,
  idempotencyCompletion,
  isIdempotencyConflict,
  releaseIdempotencyKey,
} from "../db/idempotency-store.ts";
import { isUnanswered } from "../db/pooled-client.ts";
import { withTransaction } from "../db/transaction.ts";
import { type CloudEvent, chatEvent } from "../events/cloudevents.ts";
import type { EventPublisher } from "../events/event-publisher.ts";
import { noteCommittedEvents, noteUncertainEvents } from "../events/request-events.ts";
import { builtinReply, WELCOME } from "../responders/builtin-responder.ts";
import { boundContext, type Reply, type Responder } from "../responders/responder.ts";
import {
  authSnapshot,
  headBytesFor,
  type NewestReads,
  newestMessages,
  pageFromCache,
  pageFromEnd,
  type ReadSession,
} from "./cached-reads.ts";
import { changeTime } from "./change-time.ts";
import { assertValidContent, assertValidUserId, isBlank, storableText } from "./content-rules.ts";
import { ChatError, MAY_HAVE_BEEN_ERASED, MAY_HAVE_BEEN_MADE, unavailableRetryAfter } from "./errors.ts";
import { applyToHistory, pageOf, toMessage, toTurns } from "./history-rules.ts";
import { isLineForm, pageJsonFromText } from "./history-text.ts";
import { assertValidMetadata } from "./metadata-rules.ts";
import { hashToken, newSessionToken, tokenMatches } from "./tokens.ts";
import type { HistoryPage, Message, Session, SessionRecord } from "./types.ts";

/** Messages kept in the history cache entry; a longer session is served page by page from Postgres. */
export const HISTORY_CACHE_MAX = 500;

export interface ChatDeps {
  pool: pg.Pool;
  cache: CacheGuard | null;
  responder: Responder;
  publisher: EventPublisher;
  config: Config;
}

/** A session whose token was checked, with what was read to check it (so the turn needs no second read). */
export interface AuthorizedSession extends ReadSession {
  fromCache: boolean;
}

export type Replayable<T> = T & { replayed?: boolean };

export interface CreatedSession {
  session: Session;
  token: string;
  messages: Message[];
  suggestions: string[];
}

export interface PostedTurn {
  message: Message;
  reply: Message;
  suggestions: string[];
}

export interface EditResult {
  message: Message;
  reply?: Message;
  /** With a regenerated reply: its suggestions, which replace the session's as a post's do. */
  suggestions?: string[];
}

const publicSession = (s: SessionRecord): Session => ({
  session_id: s.session_id,
  user_id: s.user_id,
  metadata: s.metadata,
  created_at: s.created_at,
  updated_at: s.updated_at,
  last_seq: s.last_seq,
  message_count: s.message_count,
});

/** What one change computes from a snapshot: the SQL change, the result, the history after it. */
interface Planned<T> {
  change: SessionChange;
  result: T;
  history: (before: Message[]) => Message[];
  /** Set when the change only appends these messages: the cache then appends them instead of rewriting. */
  appended?: Message[];
}

/**
 * A session whose token was accepted but whose row is gone by the time the request reads or changes it: erased (or
 * purged) meanwhile, or accepted from another instance's cache entry during its second of staleness. 401, as for
 * any erased session's token (README, "What a client should know"), not 404, which says the token is another
 * session's.
 */
const sessionGone = () => new ChatError("unauthorized", "the session token is not valid");

export class ChatService {
  readonly #d: ChatDeps;
  /**
   * A session longer than HISTORY_CACHE_MAX, or with more than CACHE_HISTORY_MAX_BYTES of content, is read from
   * Postgres on each change: its newest messages only, as many as the responder's context can take and the message
   * being edited with its reply.
   */
  readonly #newestWhenLong: number;

  constructor(deps: ChatDeps) {
    this.#d = deps;
    this.#newestWhenLong = deps.config.RESPONDER_CONTEXT_MESSAGES * 2 + 2;
  }

  /**
   * Checks the bearer token. Wrong or missing: 401. A valid token of another session: 404.
   * `prefetched`: the session's cache entries, if the request already read them (with its rate limit); else
   * `read` is what it reads of them (an edit's or delete's before authorization: the history's start only).
   */
  async authorize(
    sessionId: string,
    token: string | undefined,
    prefetched?: PrefetchedEntries,
    read?: SessionRead,
  ): Promise<AuthorizedSession> {
    if (!token)
      throw new ChatError("unauthorized", "a session token is required (Authorization: Bearer <token>)");
    const found = await this.#readSession(sessionId, prefetched, read);
    if (found && tokenMatches(token, found.session.token_hash)) return found;
    const owner = await this.#d.pool.query({
      name: "session_by_token",
      text: "SELECT 1 FROM sessions WHERE token_hash = decode($1, 'hex')",
      values: [hashToken(token)],
    });
    if (owner.rowCount) throw new ChatError("session_not_found", "session not found");
    throw new ChatError("unauthorized", "the session token is not valid");
  }

  async createSession(
    input: { user_id?: string | null; metadata?: Record<string, unknown> },
    idem?: IdempotencyRequest,
  ): Promise<Replayable<CreatedSession>> {
    const userId = assertValidUserId(input.user_id);
    const metadata = assertValidMetadata(input.metadata, this.#d.config.MAX_METADATA_BYTES);
    return this.#idempotent(idem, 201, async (completion) => {
      const sessionId = randomUUID();
      const token = newSessionToken();
      const at = new Date().toISOString();
      const welcome: NewMessage = {
        message_id: randomUUID(),
        seq: 1,
        role: "assistant",
        content: WELCOME.content,
        reply_to: null,
      };
      const welcomeMessage = toMessage(sessionId, welcome, at);
      const events = [
        chatEvent("chat.session.created", sessionId, at, {
          session_id: sessionId,
          user_id: userId,
        }),
        messageEvent("chat.message.created", welcomeMessage, at),
      ];
      const record: SessionRecord = {
        session_id: sessionId,
        user_id: userId,
        metadata,
        created_at: at,
        updated_at: at,
        last_seq: 1,
        message_count: 1,
        token_hash: hashToken(token),
        generation: 1,
        suggestions: WELCOME.suggestions,
      };
      const result: CreatedSession = {
        session: publicSession(record),
        token,
        messages: [welcomeMessage],
        suggestions: WELCOME.suggestions,
      };
      const stored = await insertSession(this.#d.pool, {
        sessionId,
        userId: record.user_id,
        tokenHash: record.token_hash,
        metadata: record.metadata,
        at,
        suggestions: record.suggestions,
        welcome,
        events,
        idempotency: completion?.(result),
      }).catch((err: unknown) => mayHaveCommitted(err, events));
      await this.#afterCommit(stored, [welcomeMessage], events, false);
      return result;
    });
  }

  async postMessage(
    auth: AuthorizedSession,
    content: string,
    idem?: IdempotencyRequest,
  ): Promise<Replayable<PostedTurn>> {
    assertValidContent(content, this.#d.config.MAX_CONTENT_CHARS);
    const contextSize = this.#d.config.RESPONDER_CONTEXT_MESSAGES;
    const reads = { newest: contextSize, chars: this.#d.config.RESPONDER_CONTEXT_CHARS };
    return this.#idempotent(idem, 201, (completion) =>
      this.#change(auth, reads, async (snap) => {
        const s = snap.session;
        this.#assertRoom(s, 2);
        const at = changeTime(s.updated_at);
        const user: NewMessage = {
          message_id: randomUUID(),
          seq: s.last_seq + 1,
          role: "user",
          content,
          reply_to: null,
        };
        const context = newestMessages(snap, contextSize);
        // the conversation the reply answers: the session's live messages and this one
        const reply = await this.#respond(
          [...toTurns(context), { role: "user", content }],
          s.message_count + 1,
        );
        const bot: NewMessage = {
          message_id: randomUUID(),
          seq: s.last_seq + 2,
          role: "assistant",
          content: reply.content,
          reply_to: user.message_id,
        };
        const inserted = [toMessage(s.session_id, user, at), toMessage(s.session_id, bot, at)];
        const result: PostedTurn = {
          message: inserted[0] as Message,
          reply: inserted[1] as Message,
          suggestions: reply.suggestions,
        };
        return {
          result,
          history: (before) => applyToHistory(before, { inserts: inserted }),
          appended: inserted,
          change: {
            sessionId: s.session_id,
            expectedGeneration: s.generation,
            at,
            lastSeq: s.last_seq + 2,
            messageCountDelta: 2,
            suggestions: reply.suggestions,
            inserts: [user, bot],
            events: inserted.map((m) => messageEvent("chat.message.created", m, at)),
            idempotency: completion?.(result),
          },
        };
      }),
    );
  }

  async editMessage(
    auth: AuthorizedSession,
    /** `expected_version`: the version (or any of the versions) the message must be at. */
    edit: {
      message_id: string;
      content: string;
      expected_version?: number | readonly number[];
      regenerate?: boolean;
    },
  ): Promise<EditResult> {
    assertValidContent(edit.content, this.#d.config.MAX_CONTENT_CHARS);
    return this.#change(auth, {}, async (snap, db) => {
      const s = snap.session;
      const target = await this.#liveMessage(snap, edit.message_id, db);
      if (target.role !== "user")
        throw new ChatError("message_not_editable", "only user messages can be edited");
      assertVersion(target, edit.expected_version);
      const at = changeTime(s.updated_at);
      const message: Message = {
        ...target,
        content: edit.content,
        version: target.version + 1,
        edited_at: at,
      };
      let reply: Message | undefined;
      let inserted: Message | undefined;
      let suggestions: string[] | undefined;
      let lastSeq = s.last_seq;
      if (edit.regenerate) {
        const { laterUser, reply: old, before, after } = await this.#regenerateFacts(snap, target, db);
        if (laterUser) {
          throw new ChatError(
            "validation_failed",
            "regenerate is allowed only when editing the latest user message",
            {
              errors: [{ path: "regenerate", message: "only for the latest user message" }],
            },
          );
        }
        // the conversation up to the edited message: the live messages but those after it
        const answer = await this.#respond(
          [...toTurns(before), { role: "user", content: edit.content }],
          s.message_count - after,
        );
        suggestions = answer.suggestions;
        if (old) {
          reply = { ...old, content: answer.content, version: old.version + 1, edited_at: at };
        } else {
          this.#assertRoom(s, 1);
          lastSeq = s.last_seq + 1;
          inserted = toMessage(
            s.session_id,
            {
              message_id: randomUUID(),
              seq: lastSeq,
              role: "assistant",
              content: answer.content,
              reply_to: target.message_id,
            },
            at,
          );
        }
      }
      const edits = reply ? [message, reply] : [message];
      const events: CloudEvent[] = edits.map((m) => messageEvent("chat.message.edited", m, at));
      if (inserted) events.push(messageEvent("chat.message.created", inserted, at));
      // A regenerated reply comes with its suggestions, as a post's does: they replace the session's, and a client
      // would otherwise go on offering those of the reply it just replaced.
      const newReply = reply ?? inserted;
      const result: EditResult =
        newReply && suggestions ? { message, reply: newReply, suggestions } : { message };
      return {
        result,
        history: (before) => applyToHistory(before, { edits, inserts: inserted ? [inserted] : [] }),
        change: {
          sessionId: s.session_id,
          expectedGeneration: s.generation,
          at,
          lastSeq,
          messageCountDelta: inserted ? 1 : 0,
          suggestions,
          inserts: inserted ? [inserted] : [],
          edits: edits.map((m) => ({ message_id: m.message_id, content: m.content })),
          events,
        },
      };
    });
  }

  async deleteMessage(
    auth: AuthorizedSession,
    messageId: string,
    /** The version (or any of the versions) the message must be at, as for an edit. */
    expectedVersion?: number | readonly number[],
  ): Promise<{ message_id: string; deleted: true }> {
    return this.#change(auth, {}, async (snap, db) => {
      const s = snap.session;
      const target = await this.#liveMessage(snap, messageId, db);
      assertVersion(target, expectedVersion);
      const at = changeTime(s.updated_at);
      return {
        result: { message_id: messageId, deleted: true as const },
        history: (before) => applyToHistory(before, { deleteMessageId: messageId }),
        change: {
          sessionId: s.session_id,
          expectedGeneration: s.generation,
          at,
          lastSeq: s.last_seq,
          messageCountDelta: -1,
          deleteMessageId: messageId,
          events: [
            // A deleted message's text leaves the system: the event carries none, and the statement redacts the
            // message's earlier events. A delete is a new version (the row's too), so that a consumer keeping the
            // newest version applies it and can tell it from a late copy of the edit before it.
            chatEvent("chat.message.deleted", s.session_id, at, {
              session_id: s.session_id,
              message_id: target.message_id,
              seq: target.seq,
              role: target.role,
              version: target.version + 1,
            }),
          ],
        },
      };
    });
  }

  async history(
    auth: AuthorizedSession,
    afterSeq: number,
    limit: number,
  ): Promise<HistoryPage & { fromCache: boolean }> {
    if (auth.history) return { ...pageOf(auth.history, afterSeq, limit), fromCache: auth.fromCache };
    const sessionId = auth.session.session_id;
    // A session past HISTORY_CACHE_MAX is never whole in a snapshot: reading one (its newest messages, the
    // responder's context, up to 2 MB of JSON) before each page cost ≈ 10 times a page of one message.
    const long = auth.session.message_count > HISTORY_CACHE_MAX;
    if (!long) {
      const snap = await this.#snapshot(sessionId);
      if (snap.complete) return { ...pageOf(snap.messages, afterSeq, limit), fromCache: false };
    }
    const rows = await historyPage(this.#d.pool, sessionId, afterSeq, limit + 1);
    // without the snapshot, an erased session (401, as the snapshot said) looks like the end of a history
    if (long && rows.length === 0 && (await sessionGeneration(this.#d.pool, sessionId)) === null)
      throw sessionGone();
    return { ...pageOf(rows, afterSeq, limit), fromCache: false };
  }

  /** The JSON body of history(): cut straight from the cache entry's text when the history came from there. */
  async historyJson(
    auth: AuthorizedSession,
    afterSeq: number,
    limit: number,
  ): Promise<{ json: string; fromCache: boolean }> {
    if (auth.historyText && isLineForm(auth.historyText))
      return { json: pageJsonFromText(auth.historyText, afterSeq, limit), fromCache: auth.fromCache };
    if (auth.newest || auth.oldest) {
      const fromEnd = pageFromEnd(auth, afterSeq, limit);
      if (fromEnd !== null) return { json: fromEnd, fromCache: true };
      // The end that was read does not hold this page. From the start, read as much more as the page needs,
      // judged by the size of the lines that were read; else (or if that is still short) the whole entry.
      const sessionId = auth.session.session_id;
      if (auth.oldest) {
        const more = await this.#d.cache?.read(sessionId, "head", headBytesFor(auth.oldest, limit));
        const page = more?.kind === "hit" ? pageFromCache(more.value, afterSeq, limit) : null;
        if (page !== null) return { json: page, fromCache: true };
      }
      const whole = await this.#readSession(sessionId);
      if (whole?.historyText && isLineForm(whole.historyText))
        return { json: pageJsonFromText(whole.historyText, afterSeq, limit), fromCache: true };
    }
    const { fromCache, ...page } = await this.history(auth, afterSeq, limit);
    return { json: JSON.stringify(page), fromCache };
  }

  getSession(auth: AuthorizedSession): Session {
    return publicSession(auth.session);
  }

  suggestions(auth: AuthorizedSession): string[] {
    return auth.session.suggestions;
  }

  /** Removes the session, its messages, idempotency records and unsent events for good. */
  async eraseSession(auth: AuthorizedSession): Promise<void> {
    const sessionId = auth.session.session_id;
    const at = new Date().toISOString();
    const event = chatEvent("chat.session.erased", sessionId, at, { session_id: sessionId });
    const erased = await busyOnLockTimeout(() => eraseSession(this.#d.pool, sessionId, event)).catch(
      (err: unknown) => this.#mayHaveErased(err, auth.session, event),
    );
    // Tombstoned even if already erased (by a concurrent request or the retention purge, whose event stands, as does
    // the 204): the token was then accepted from a cache entry, maybe one a Redis failover brought back. So is one
    // whose COMMIT went unanswered and whose session is gone after it (eraseSession checked).
    await this.#d.cache?.afterErase(sessionId);
    if (erased) await this.#publish(sessionId, [event], false);
  }

  /**
   * An erase whose COMMIT went unanswered and whose outcome eraseSession could not check: the session's entries must
   * not be served (if it was erased, its token would go on reading it until their TTL), nor tombstoned (if it was not,
   * its user would be locked out as long). A placeholder at the generation the request read makes reads go to
   * Postgres, which knows.
   */
  async #mayHaveErased(err: unknown, session: SessionRecord, event: CloudEvent): Promise<never> {
    if (!isUnanswered(err)) throw err;
    noteUncertainEvents([event.id]);
    await this.#d.cache?.afterUncertainChange(session.session_id, session.generation);
    throw new ChatError(
      "service_unavailable",
      `the database did not answer after the erase was sent, so the session ${MAY_HAVE_BEEN_ERASED}: retry the ` +
        "DELETE; a 204, or a 401 (an erased session's token is no longer valid), means it is gone",
      { retryAfterSeconds: unavailableRetryAfter(), cause: err },
    );
  }

  // --- the write path -------------------------------------------------------------------------

  /**
   * Applies a change computed from a snapshot. First optimistically, from what auth already read, in one
   * statement that does nothing if the session moved on; then, if it did, under the session's row lock
   * (bounded by SESSION_LOCK_TIMEOUT_MS, else session_busy), so a contended session still makes progress.
   * `reads`: the plan reads no more than the newest `newest` messages, nor older ones once newer ones hold `chars`
   * characters of content (the responder's bounds), so the end of the history will do.
   */
  async #change<T>(
    auth: AuthorizedSession,
    reads: NewestReads,
    /** `db`: where the snapshot was read (the pool, or the transaction holding the session's row lock). */
    plan: (snap: SessionSnapshot, db: Queryable) => Promise<Planned<T>>,
  ): Promise<T> {
    return busyOnLockTimeout(async () => {
      const read = authSnapshot(auth, reads) ?? (await this.#wholeSnapshot(auth, reads));
      const { snap: optimistic, planned: first } = await this.#planChecked(auth, read, plan);
      const checkBacklog = this.#d.publisher.usesBacklog;
      const applied = await applySessionChange(this.#d.pool, { ...first.change, checkBacklog }).catch(
        (err: unknown) => this.#mayHaveCommitted(err, first.change),
      );
      if (applied) return this.#committed(applied, optimistic, first);
      let sent: SessionChange | undefined;
      const locked = await withTransaction(this.#d.pool, async (client) => {
        const snap = await lockSnapshot(
          client,
          auth.session.session_id,
          HISTORY_CACHE_MAX,
          this.#newestWhenLong,
          this.#d.config.CACHE_HISTORY_MAX_BYTES,
        );
        if (!snap) return null;
        const planned = await plan(snap, client).catch((err: unknown) => {
          if (err instanceof ChatError) return err;
          throw err;
        });
        if (planned instanceof ChatError) return { snap, refused: planned };
        sent = planned.change;
        const done = await applySessionChange(client, { ...planned.change, checkBacklog });
        if (!done) throw new Error("session changed while its row was locked");
        return { snap, planned, done };
      }).catch((err: unknown) => this.#mayHaveCommitted(err, sent));
      if (!locked) throw await this.#gone(auth.session.session_id);
      if ("refused" in locked) {
        // Refused at a newer generation than the request read: what it read may be a cache entry that a Redis
        // failover brought back, which no other change would replace before its TTL. Costs what a change's write does.
        const { snap } = locked;
        if (auth.fromCache) await this.#d.cache?.fill(snap.session, snap.complete ? snap.messages : null);
        throw locked.refused;
      }
      return this.#committed(locked.done, locked.snap, locked.planned);
    });
  }

  /**
   * Plans from what the request read. A refusal (no such message, another version, ...) planned from a cache entry
   * stands only if that entry is current: Redis back from a failover that lost its last writes serves older entries
   * (an acknowledged message missing, an edit or a delete undone) until their TTL. Planned again from Postgres,
   * which also puts the current state back in the cache. Costs one indexed query, on refusals from the cache only.
   */
  async #planChecked<T>(
    auth: AuthorizedSession,
    snap: SessionSnapshot,
    plan: (snap: SessionSnapshot, db: Queryable) => Promise<Planned<T>>,
  ): Promise<{ snap: SessionSnapshot; planned: Planned<T> }> {
    try {
      return { snap, planned: await plan(snap, this.#d.pool) };
    } catch (err) {
      if (!(err instanceof ChatError) || !auth.fromCache) throw err;
      const id = snap.session.session_id;
      if ((await sessionGeneration(this.#d.pool, id)) === snap.session.generation) throw err;
      const fresh = await this.#snapshot(id);
      return { snap: fresh, planned: await plan(fresh, this.#d.pool) };
    }
  }

  /**
   * mayHaveCommitted, the cache first: its entries from before `change` would tell the client that the 503 sends to
   * read the session that the change was not made, and it would repeat it.
   */
  async #mayHaveCommitted(err: unknown, change: SessionChange | undefined): Promise<never> {
    if (change && isUnanswered(err))
      await this.#d.cache?.afterUncertainChange(change.sessionId, generationAfter(change));
    return mayHaveCommitted(err, change?.events ?? []);
  }

  /** After commit: the cache gets the new state (written through when the whole history is known), Kafka the events. */
  async #committed<T>(applied: AppliedChange, snap: SessionSnapshot, planned: Planned<T>): Promise<T> {
    const { change, appended } = planned;
    const cache = this.#d.cache;
    if (appended) {
      await this.#publishAfter(
        cache?.afterAppend(applied.session, change.expectedGeneration, appended, HISTORY_CACHE_MAX),
        change.sessionId,
        change.events,
        applied.backlog,
      );
    } else {
      const history = snap.complete ? planned.history(snap.messages) : null;
      await this.#afterCommit(applied.session, history, change.events, applied.backlog);
    }
    return planned.result;
  }

  async #afterCommit(
    session: SessionRecord,
    history: Message[] | null,
    events: CloudEvent[],
    backlog: boolean,
  ) {
    const cacheable = history && history.length <= HISTORY_CACHE_MAX ? history : null;
    await this.#publishAfter(
      this.#d.cache?.afterWrite(session, cacheable),
      session.session_id,
      events,
      backlog,
    );
  }

  /** The cache write and the Kafka fast path of a committed change, side by side. */
  async #publishAfter(
    cacheWrite: Promise<void> | undefined,
    sessionId: string,
    events: CloudEvent[],
    backlog: boolean,
  ) {
    await Promise.all([cacheWrite, this.#publish(sessionId, events, backlog)]);
  }

  /** Every committed change's events: named on the request's access line, then sent after commit. */
  #publish(sessionId: string, events: CloudEvent[], backlog: boolean): Promise<void> {
    noteCommittedEvents(events.map((e) => e.id));
    return this.#d.publisher.afterCommit(sessionId, events, backlog);
  }

  /**
   * Runs a change at most once per Idempotency-Key. Fast path: the change statement itself creates the
   * completed record, so a first request costs no extra round trip; if the key already has a record (a
   * duplicate, a claim in progress, an expired record), that statement fails and changes nothing, and the
   * claim protocol below decides: replay, wait, 409, 422, or take the key over and run.
   * With a costly responder the claim comes first, so concurrent duplicates never pay for two answers.
   */
  async #idempotent<T extends object>(
    idem: IdempotencyRequest | undefined,
    statusCode: number,
    run: (completion?: (result: T) => ReturnType<typeof idempotencyCompletion>) => Promise<T>,
  ): Promise<Replayable<T>> {
    if (!idem) return run();
    const ttlSeconds = this.#d.config.IDEMPOTENCY_TTL_SECONDS;
    if (!this.#d.responder.costly) {
      try {
        return await run((result) =>
          idempotencyCompletion(idem, statusCode, result, { claim: true, ttlSeconds }),
        );
      } catch (err) {
        // A full session is refused before the statement that would find the key's record, yet the post that filled
        // it may be this key's own: the claim decides (replay, 422, replay_withdrawn), as for any key with a record.
        if (!isIdempotencyConflict(err) && !isSessionFull(err)) throw err;
      }
    }
    const claim = await claimIdempotencyKey(this.#d.pool, idem, {
      ttlSeconds,
      lockSeconds: this.#d.config.IDEMPOTENCY_LOCK_SECONDS,
      waitMs: 2000,
    });
    if (claim.kind === "replay") return { ...(claim.response as T), replayed: true };
    try {
      return await run((result) =>
        idempotencyCompletion(idem, statusCode, result, { claim: false, token: claim.token, ttlSeconds }),
      );
    } catch (err) {
      await releaseIdempotencyKey(this.#d.pool, idem, claim.token).catch(() => {});
      throw err;
    }
  }

  // --- reads ----------------------------------------------------------------------------------

  async #readSession(
    sessionId: string,
    prefetched?: PrefetchedEntries,
    read?: SessionRead,
  ): Promise<AuthorizedSession | null> {
    const cached = await this.#d.cache?.get(sessionId, prefetched, read);
    if (cached?.kind === "erased") return null;
    if (cached?.kind === "hit") {
      const hit = cached.value; // not spread: that would parse the history, which most reads never need
      return {
        session: hit.session,
        get history() {
          return hit.history;
        },
        historyText: hit.historyText,
        newest: hit.newest,
        oldest: hit.oldest,
        fromCache: true,
      };
    }
    const snap = await this.#loadAndFill(sessionId);
    if (!snap) return null;
    return { session: snap.session, history: snap.complete ? snap.messages : null, fromCache: false };
  }

  /**
   * A snapshot to plan a change from when what authorize() read does not hold one. If it read only the start of a
   * cached history (edits and deletes read ahead no more than that before they are authorized), the whole entry
   * from the cache now; else, or if the cache no longer holds it, from Postgres.
   */
  async #wholeSnapshot(auth: AuthorizedSession, reads: NewestReads): Promise<SessionSnapshot> {
    if (auth.oldest) {
      const found = await this.#d.cache?.get(auth.session.session_id);
      const snap = found?.kind === "hit" ? authSnapshot(found.value, reads) : null;
      if (snap) return snap;
    }
    return this.#snapshot(auth.session.session_id);
  }

  async #snapshot(sessionId: string): Promise<SessionSnapshot> {
    const snap = await this.#loadAndFill(sessionId);
    if (!snap) throw await this.#gone(sessionId);
    return snap;
  }

  /**
   * sessionGone() for a session whose token was accepted, after its cache entry is made an erased tombstone: the
   * entry that accepted it may be one a Redis failover brought back, which would go on serving the erased session's
   * reads until its TTL.
   */
  async #gone(sessionId: string): Promise<ChatError> {
    await this.#d.cache?.afterErase(sessionId);
    return sessionGone();
  }

  /** The session from Postgres, within the cache's bounds, and into the cache (its history only if complete). */
  async #loadAndFill(sessionId: string): Promise<SessionSnapshot | null> {
    const snap = await loadSnapshot(
      this.#d.pool,
      sessionId,
      HISTORY_CACHE_MAX,
      this.#newestWhenLong,
      this.#d.config.CACHE_HISTORY_MAX_BYTES,
    );
    if (snap) await this.#d.cache?.fill(snap.session, snap.complete ? snap.messages : null);
    return snap;
  }

  /**
   * RegenerateFacts from the snapshot when it is the whole history, else from Postgres through `db` (the snapshot's
   * own connection): a long session's snapshot holds only its newest messages, which need not reach an older
   * target's reply, a later user message, or its context (e.g. once the newest questions were deleted).
   */
  async #regenerateFacts(snap: SessionSnapshot, target: Message, db: Queryable): Promise<RegenerateFacts> {
    if (!snap.complete) return regenerateFacts(db, target, this.#d.config.RESPONDER_CONTEXT_MESSAGES);
    return {
      laterUser: snap.messages.some((m) => m.role === "user" && m.seq > target.seq),
      reply: snap.messages.find((m) => m.role === "assistant" && m.reply_to === target.message_id) ?? null,
      before: snap.messages.filter((m) => m.seq < target.seq),
      after: snap.messages.filter((m) => m.seq > target.seq).length,
    };
  }

  /** A session takes at most MAX_SESSION_MESSAGES messages over its life (seq is their count, deleted included). */
  #assertRoom(session: SessionRecord, adding: number): void {
    const max = this.#d.config.MAX_SESSION_MESSAGES;
    if (session.last_seq + adding > max)
      throw new ChatError(
        "session_full",
        `this session holds its maximum of ${max} messages; start a new session`,
      );
  }

  /**
   * A message of this session that is not deleted, from the snapshot or, for long sessions, Postgres: through
   * `db`, the snapshot's own connection (under the row lock, a second one from the pool could wait for ever).
   */
  async #liveMessage(snap: SessionSnapshot, messageId: string, db: Queryable): Promise<Message> {
    const inSnap = snap.messages.find((m) => m.message_id === messageId);
    if (inSnap) return inSnap;
    if (!snap.complete) {
      const row = await findMessage(db, snap.session.session_id, messageId);
      if (row && !row.deleted) {
        const { deleted: _d, ...message } = row;
        return message;
      }
    }
    throw new ChatError("message_not_found", "message not found");
  }

  /**
   * The responder's reply, storable: a model can answer with a NUL or half a surrogate pair, which Postgres refuses
   * (the turn would fail with a 500 on every retry). A reply left blank by that, or blank as a user's text would be
   * (white space and invisible characters only: isBlank), gets the built-in one; such suggestions are dropped.
   * `total`: the live messages of the conversation `history` ends, which the responder is told it does not see all
   * of once the context's bounds leave some out.
   */
  async #respond(history: ReturnType<typeof toTurns>, total: number): Promise<Reply> {
    const cfg = this.#d.config;
    const context = boundContext(history, cfg.RESPONDER_CONTEXT_MESSAGES, cfg.RESPONDER_CONTEXT_CHARS);
    const info = { earlier: Math.max(0, total - context.length) };
    const reply = await this.#d.responder.respond(context, info);
    const content = storableText(reply.content);
    const suggestions = reply.suggestions.map(storableText).filter((s) => !isBlank(s));
    if (isBlank(content)) return builtinReply(context, info);
    return { content, suggestions };
  }
}

/** An edit's or delete's precondition: `expected`, the version (or any of the versions) the message must be at. */
function assertVersion(target: Message, expected: number | readonly number[] | undefined): void {
  if (expected === undefined) return;
  const versions = [expected].flat();
  if (!versions.includes(target.version))
    throw new ChatError(
      "version_conflict",
      `message is at version ${target.version}, not ${versions.join(" or ")}`,
    );
}

/**
 * Rethrows a change's failed write. One whose statement (or COMMIT) Postgres never answered may have committed: a
 * 503 that said only "retry shortly" had a client without an Idempotency-Key post twice. Still a 503 (retry once
 * the database answers), saying so; the log keeps the cause's reason.
 */
function mayHaveCommitted(err: unknown, events: readonly CloudEvent[]): never {
  if (!isUnanswered(err)) throw err;
  // For the request's log: whether it was made is then one look for these ids in the outbox.
  noteUncertainEvents(events.map((e) => e.id));
  throw new ChatError(
    "service_unavailable",
    `the database did not answer after the change was sent, so it ${MAY_HAVE_BEEN_MADE}: retry a post or create ` +
      "with the same Idempotency-Key (a change made is replayed), and read the session before repeating another",
    { retryAfterSeconds: unavailableRetryAfter(), cause: err },
  );
}

const isSessionFull = (err: unknown) => err instanceof ChatError && err.code === "session_full";

/** The pool's lock_timeout (SESSION_LOCK_TIMEOUT_MS) expired waiting for the session row: another writer holds it. */
async function busyOnLockTimeout<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if ((err as { code?: string }).code === "55P03") {
      throw new ChatError("session_busy", "the session is busy with another change; retry shortly", {
        retryAfterSeconds: 1,
      });
    }
    throw err;
  }
}

function messageEvent(
  type: "chat.message.created" | "chat.message.edited",
  m: Message,
  at: string,
): CloudEvent {
  return chatEvent(type, m.session_id, at, {
    session_id: m.session_id,
    message_id: m.message_id,
    seq: m.seq,
    role: m.role,
    version: m.version,
    content: m.content,
    reply_to: m.reply_to,
  });
}
