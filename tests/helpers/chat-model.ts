import { builtinReply, WELCOME } from "../../layers/chat/responders/builtin-responder.ts";
import { boundContext, type Reply, type Turn } from "../../layers/chat/responders/responder.ts";

/**
 * The API's documented semantics as a plain in-memory model (README's API sections, docs/openapi.json): sessions,
 * turns, edits under versions, deletes, history pages, suggestions, Idempotency-Key replays and erase. Each method
 * returns what the API must answer, given what the model holds; `learn` then takes the values only the server can
 * choose (ids, tokens, times) from its answer. The bot's words come from the built-in responder itself: what the
 * model decides is which turns it is shown (live messages, edited text, the context's bounds) and when it answers.
 */

export interface ModelLimits {
  maxSessionMessages: number;
  contextMessages: number;
  contextChars: number;
}

export interface ModelMessage {
  message_id: string;
  session_id: string;
  seq: number;
  role: "user" | "assistant";
  content: string;
  version: number;
  created_at: string;
  edited_at: string | null;
  reply_to: string | null;
}

interface StoredMessage extends ModelMessage {
  deleted: boolean;
}

interface PostKey {
  content: string;
  response: unknown;
  messageIds: string[];
  withdrawn: boolean;
}

export interface ModelSession {
  session_id: string;
  token: string;
  user_id: string | null;
  metadata: Record<string, unknown>;
  created_at: string;
  /** The last updated_at the API showed; `moved` once a change it did not show the time of (a delete) came after. */
  updated_at: string;
  updatedMoved: boolean;
  last_seq: number;
  messages: StoredMessage[];
  suggestions: string[];
  erased: boolean;
  /** The history's last ETag seen, whether a change came since, and every one seen (a change never reuses one). */
  etag: string | null;
  etagMoved: boolean;
  etags: Set<string>;
  postKeys: Map<string, PostKey>;
}

/** What a request must get: a status, and for a success the exact body (or a check of what the server chose). */
export type Expected =
  | { status: number; code: string }
  | { status: number; body?: unknown; headers?: Record<string, string | null> };

export const publicMessage = ({ deleted: _d, ...m }: StoredMessage): ModelMessage => m;

export class ChatModel {
  readonly sessions: ModelSession[] = [];
  readonly createKeys = new Map<string, { body: string; response: unknown; sessionId: string }>();
  readonly limits: ModelLimits;
  /** The Idempotency-Keys a sequence's creates pick from. */
  readonly createKeyNames: string[];
  constructor(limits: ModelLimits, createKeyNames: string[] = []) {
    this.limits = limits;
    this.createKeyNames = createKeyNames;
  }

  live = (s: ModelSession) => s.messages.filter((m) => !m.deleted);

  /** Who a token is: its live session, or nothing (never issued, or its session erased). */
  authorize(s: ModelSession, token: string): Expected | null {
    const owner = this.sessions.find((o) => o.token === token && !o.erased);
    if (!owner) return { status: 401, code: "unauthorized" };
    if (owner !== s || s.erased) return { status: 404, code: "session_not_found" };
    return null;
  }

  // --- sessions ---------------------------------------------------------------------------------------------

  createReplay(key: string | undefined, body: string): Expected | null {
    if (key === undefined) return null;
    const rec = this.createKeys.get(key);
    if (!rec) return null;
    if (rec.body !== body) return { status: 422, code: "idempotency_key_reused" };
    return { status: 201, body: rec.response, headers: { "idempotent-replayed": "true" } };
  }

  /** A create answered 201 (not a replay): the session as the model must see it, from the ids and time it chose. */
  learnCreate(
    key: string | undefined,
    sent: { user_id?: string; metadata?: Record<string, unknown> },
    body: string,
    res: {
      session: { session_id: string; created_at: string };
      token: string;
      messages: { message_id: string }[];
    },
  ): unknown {
    const id = res.session.session_id;
    const at = res.session.created_at;
    const welcome: StoredMessage = {
      message_id: res.messages[0]?.message_id as string,
      session_id: id,
      seq: 1,
      role: "assistant",
      content: WELCOME.content,
      version: 1,
      created_at: at,
      edited_at: null,
      reply_to: null,
      deleted: false,
    };
    const s: ModelSession = {
      session_id: id,
      token: res.token,
      user_id: sent.user_id ?? null,
      metadata: sent.metadata ?? {},
      created_at: at,
      updated_at: at,
      updatedMoved: false,
      last_seq: 1,
      messages: [welcome],
      suggestions: WELCOME.suggestions,
      erased: false,
      etag: null,
      etagMoved: true,
      etags: new Set(),
      postKeys: new Map(),
    };
    this.sessions.push(s);
    const expected = {
      session: this.sessionBody(s),
      token: res.token,
      messages: [publicMessage(welcome)],
      suggestions: WELCOME.suggestions,
    };
    if (key !== undefined) this.createKeys.set(key, { body, response: expected, sessionId: id });
    return expected;
  }

  sessionBody(s: ModelSession) {
    return {
      session_id: s.session_id,
      user_id: s.user_id,
      metadata: s.metadata,
      created_at: s.created_at,
      updated_at: s.updated_at,
      last_seq: s.last_seq,
      message_count: this.live(s).length,
    };
  }

  erase(s: ModelSession, token: string): Expected {
    const refused = this.authorize(s, token);
    if (refused) return refused;
    s.erased = true;
    // the erase deletes its create's and its posts' key records
    for (const [k, rec] of this.createKeys) if (rec.sessionId === s.session_id) this.createKeys.delete(k);
    s.postKeys.clear();
    return { status: 204 };
  }

  // --- changes ----------------------------------------------------------------------------------------------

  /** A post: its refusal or replay, or null when it must be made (then `reply` is what the bot must say). */
  post(s: ModelSession, token: string, content: string, key?: string): Expected | null {
    const refused = this.authorize(s, token);
    if (refused) return refused;
    const rec = key === undefined ? undefined : s.postKeys.get(key);
    if (rec) {
      if (rec.content !== content) return { status: 422, code: "idempotency_key_reused" };
      if (rec.withdrawn) return { status: 409, code: "replay_withdrawn" };
      return { status: 201, body: rec.response, headers: { "idempotent-replayed": "true" } };
    }
    if (s.last_seq + 2 > this.limits.maxSessionMessages) return { status: 409, code: "session_full" };
    return null;
  }

  postReply(s: ModelSession, content: string): Reply {
    const turns = [...this.turns(this.live(s)), { role: "user" as const, content }];
    return this.respond(turns);
  }

  learnPost(
    s: ModelSession,
    content: string,
    key: string | undefined,
    res: { message: { message_id: string; created_at: string }; reply: { message_id: string } },
  ): unknown {
    const reply = this.postReply(s, content);
    const at = res.message.created_at;
    const user = this.stored(s, res.message.message_id, s.last_seq + 1, "user", content, at, null);
    const bot = this.stored(
      s,
      res.reply.message_id,
      s.last_seq + 2,
      "assistant",
      reply.content,
      at,
      user.message_id,
    );
    s.messages.push(user, bot);
    s.last_seq += 2;
    s.suggestions = reply.suggestions;
    this.changed(s, at);
    const expected = {
      message: publicMessage(user),
      reply: publicMessage(bot),
      suggestions: reply.suggestions,
    };
    if (key !== undefined)
      s.postKeys.set(key, {
        content,
        response: expected,
        messageIds: [user.message_id, bot.message_id],
        withdrawn: false,
      });
    return expected;
  }

  /** An edit's refusal, or null when it must be made. */
  edit(
    s: ModelSession,
    token: string,
    e: { messageId: string; ifMatch?: string; expected?: number; regenerate?: boolean },
  ): Expected | null {
    const refused = this.authorize(s, token);
    if (refused) return refused;
    const target = this.live(s).find((m) => m.message_id === e.messageId);
    if (!target) return { status: 404, code: "message_not_found" };
    if (target.role !== "user") return { status: 409, code: "message_not_editable" };
    const tags = parseIfMatch(e.ifMatch);
    const versionOk =
      (tags === undefined || tags.includes(target.version)) &&
      (e.expected === undefined || e.expected === target.version);
    if (!versionOk)
      return tags !== undefined
        ? { status: 412, code: "precondition_failed" }
        : { status: 409, code: "version_conflict" };
    if (e.regenerate) {
      if (this.live(s).some((m) => m.role === "user" && m.seq > target.seq))
        return { status: 400, code: "validation_failed" };
      if (!this.replyOf(s, target) && s.last_seq + 1 > this.limits.maxSessionMessages)
        return { status: 409, code: "session_full" };
    }
    return null;
  }

  learnEdit(
    s: ModelSession,
    e: { messageId: string; content: string; regenerate?: boolean },
    res: { message: { edited_at: string }; reply?: { message_id: string } },
  ): unknown {
    const at = res.message.edited_at;
    const target = this.live(s).find((m) => m.message_id === e.messageId) as StoredMessage;
    let reply: StoredMessage | undefined;
    let answer: Reply | undefined;
    if (e.regenerate) {
      const before = this.live(s).filter((m) => m.seq < target.seq);
      answer = this.respond([...this.turns(before), { role: "user", content: e.content }]);
      reply = this.replyOf(s, target);
      if (reply) {
        Object.assign(reply, { content: answer.content, version: reply.version + 1, edited_at: at });
      } else {
        s.last_seq += 1;
        reply = this.stored(
          s,
          res.reply?.message_id as string,
          s.last_seq,
          "assistant",
          answer.content,
          at,
          target.message_id,
        );
        s.messages.push(reply);
      }
      s.suggestions = answer.suggestions;
    }
    Object.assign(target, { content: e.content, version: target.version + 1, edited_at: at });
    this.withdraw(s, [target.message_id, ...(reply ? [reply.message_id] : [])]);
    this.changed(s, at);
    if (!reply || !answer) return { message: publicMessage(target) };
    return { message: publicMessage(target), reply: publicMessage(reply), suggestions: answer.suggestions };
  }

  delete(s: ModelSession, token: string, messageId: string, ifMatch?: string): Expected {
    const refused = this.authorize(s, token);
    if (refused) return refused;
    const target = this.live(s).find((m) => m.message_id === messageId);
    if (!target) return { status: 404, code: "message_not_found" };
    const tags = parseIfMatch(ifMatch);
    if (tags !== undefined && !tags.includes(target.version))
      return { status: 412, code: "precondition_failed" };
    target.deleted = true;
    target.version += 1;
    this.withdraw(s, [messageId]);
    this.changed(s, null);
    return { status: 200, body: { message_id: messageId, deleted: true } };
  }

  // --- reads ------------------------------------------------------------------------------------------------

  page(s: ModelSession, afterSeq: number, limit: number) {
    const rest = this.live(s).filter((m) => m.seq > afterSeq);
    const messages = rest.slice(0, limit);
    return {
      messages: messages.map(publicMessage),
      next_after_seq: rest.length > limit ? (messages.at(-1)?.seq ?? null) : null,
    };
  }

  // --- rules ------------------------------------------------------------------------------------------------

  private turns = (messages: readonly ModelMessage[]): Turn[] =>
    messages.map((m) => ({ role: m.role, content: m.content }));

  /** The bot's reply to `turns` (which end with the user message it answers), as it is shown them. */
  private respond(turns: Turn[]): Reply {
    const shown = boundContext(turns, this.limits.contextMessages, this.limits.contextChars);
    return builtinReply(shown, { earlier: turns.length - shown.length });
  }

  private replyOf = (s: ModelSession, user: ModelMessage) =>
    this.live(s).find((m) => m.role === "assistant" && m.reply_to === user.message_id);

  private stored(
    s: ModelSession,
    id: string,
    seq: number,
    role: "user" | "assistant",
    content: string,
    at: string,
    replyTo: string | null,
  ): StoredMessage {
    return {
      message_id: id,
      session_id: s.session_id,
      seq,
      role,
      content,
      version: 1,
      created_at: at,
      edited_at: null,
      reply_to: replyTo,
      deleted: false,
    };
  }

  /** An edit or delete of a message a post made withdraws that post's replay. */
  private withdraw(s: ModelSession, ids: string[]) {
    for (const rec of s.postKeys.values())
      if (rec.messageIds.some((id) => ids.includes(id))) rec.withdrawn = true;
  }

  /** A change: its time when the API showed it, and the history's ETag moves on. */
  private changed(s: ModelSession, at: string | null) {
    if (at === null) s.updatedMoved = true;
    else {
      s.updated_at = at;
      s.updatedMoved = false;
    }
    s.etagMoved = true;
  }
}

/** The versions an If-Match names (strong tags only), undefined for none or `*`. */
export function parseIfMatch(header: string | undefined): number[] | undefined {
  if (header === undefined || header.trim() === "*") return undefined;
  return header
    .split(",")
    .map((t) => t.trim())
    .filter((t) => /^("\d+"|\d+)$/.test(t))
    .map((t) => Number(t.replaceAll('"', "")));
}

/** Whether an If-None-Match names `etag` (weak comparison) or is `*`: the page is then 304. */
export function noneMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === "*") return true;
  const opaque = (t: string) => t.trim().replace(/^W\//, "");
  return header.split(",").some((t) => opaque(t) === opaque(etag));
}
