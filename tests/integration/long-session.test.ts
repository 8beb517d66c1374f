import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatService, HISTORY_CACHE_MAX } from "../../layers/chat/chat/chat-service.ts";
import { loadSnapshot } from "../../layers/chat/db/chat-store.ts";
import { builtinResponder } from "../../layers/chat/responders/builtin-responder.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * A session longer than HISTORY_CACHE_MAX has no cached history, so its changes read Postgres: they must read
 * only the newest messages a change needs, not HISTORY_CACHE_MAX + 1 of them on every request, and still
 * behave exactly as on a short session.
 */
let f: ChatFixture;
let id: string;
let token: string;
const TURNS = 255; // 1 welcome + 510 messages: past the 500 the cache holds

beforeAll(async () => {
  f = await chatFixture();
  const created = await f.chat.createSession({});
  id = created.session.session_id;
  token = created.token;
  for (let i = 0; i < TURNS; i++) await f.chat.postMessage(await f.chat.authorize(id, token), `turn ${i}`);
}, 120_000);
afterAll(() => f.close());

/** The service over a pool that records how many messages each snapshot statement returned. */
function observedService() {
  const snapshotSizes: number[] = [];
  const pool = new Proxy(f.db.pool, {
    get(target, prop, receiver) {
      if (prop !== "query") return Reflect.get(target, prop, receiver);
      return async (q: unknown, ...rest: unknown[]) => {
        const res = await (
          target.query as (...a: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>
        ).call(target, q, ...rest);
        if (typeof q === "object" && (q as { name?: string }).name === "load_snapshot")
          snapshotSizes.push((res.rows[0]?.messages as unknown[] | undefined)?.length ?? 0);
        return res;
      };
    },
  });
  const chat = new ChatService({
    pool,
    cache: null, // Postgres only, as for a session whose history the cache does not hold
    responder: builtinResponder,
    publisher: { usesBacklog: false, afterCommit: async () => {} },
    config: f.config,
  });
  return { chat, snapshotSizes };
}

describe(`a session of more than ${HISTORY_CACHE_MAX} messages`, () => {
  const window = () => f.config.RESPONDER_CONTEXT_MESSAGES * 2 + 2;

  it("a snapshot of it holds the newest messages a change needs, marked incomplete", async () => {
    const snap = await loadSnapshot(f.db.pool, id, HISTORY_CACHE_MAX, window());
    expect(snap?.complete).toBe(false);
    expect(snap?.session.message_count).toBeGreaterThan(HISTORY_CACHE_MAX);
    const seqs = snap?.messages.map((m) => m.seq) ?? [];
    const last = snap?.session.last_seq ?? 0;
    expect(seqs).toEqual(Array.from({ length: window() }, (_, i) => last - window() + 1 + i));
  });

  it("pages read from Postgres carry a cursor that walks every live message exactly once, to a null cursor", async () => {
    // read-only: the tests after this one change the session
    const { chat } = observedService(); // no cache: every page is read from Postgres
    const auth = await chat.authorize(id, token);
    const { rows } = await f.db.pool.query(
      "SELECT seq FROM messages WHERE session_id = $1 AND deleted_at IS NULL ORDER BY seq",
      [id],
    );
    const live = rows.map((r) => r.seq as number);
    expect(live.length).toBeGreaterThan(HISTORY_CACHE_MAX);
    // the first three live messages; more follow, so the cursor is the last of them
    const first = await chat.history(auth, 0, 3);
    expect(first.messages.map((m) => m.seq)).toEqual(live.slice(0, 3));
    expect(first.next_after_seq).toBe(live[2]);
    const walked: number[] = [];
    let cursor: number | null = 0;
    for (let pages = 0; cursor !== null; pages++) {
      if (pages > live.length) throw new Error("the cursor never reached null");
      const page = await chat.history(auth, cursor, 7);
      walked.push(...page.messages.map((m) => m.seq));
      cursor = page.next_after_seq;
      // a non-null cursor is the page's last message, and only a page that ends the history has none
      if (cursor !== null) expect(cursor).toBe(page.messages.at(-1)?.seq);
    }
    expect(walked).toEqual(live);
  });

  it("a page reads no snapshot: only the page, and whether the session still exists when the page is empty", async () => {
    // the snapshot's newest messages were read for nothing before each page: ≈ 25 ms for a page of one message of
    // a session of long messages, against ≈ 1 ms for the page alone
    const { chat, snapshotSizes } = observedService();
    const auth = await chat.authorize(id, token); // no cache: this one reads a snapshot
    const read = snapshotSizes.length;
    const page = await chat.history(auth, 0, 1);
    expect(page.messages.map((m) => m.seq)).toEqual([1]);
    const end = await chat.history(auth, auth.session.last_seq, 10);
    expect(end).toMatchObject({ messages: [], next_after_seq: null });
    expect(snapshotSizes.length).toBe(read);
    // an erased session's token accepted just before (e.g. from a cache entry): 401, as the snapshot said
    const gone = { ...auth, session: { ...auth.session, session_id: crypto.randomUUID() } };
    await expect(chat.history(gone, 0, 10)).rejects.toMatchObject({ code: "unauthorized" });
  });

  it("posts, edits (with regenerate), deletes and pages read only that many messages, and behave as before", async () => {
    const { chat, snapshotSizes } = observedService();
    const auth = () => chat.authorize(id, token);
    const before = (await auth()).session;
    const turn = await chat.postMessage(await auth(), "after many turns");
    expect(turn.message.seq).toBe(before.last_seq + 1);
    expect(turn.reply.seq).toBe(before.last_seq + 2);
    // the latest user message, regenerated: its reply is replaced, not duplicated
    const edited = await chat.editMessage(await auth(), {
      message_id: turn.message.message_id,
      content: "after many turns, edited",
      regenerate: true,
    });
    expect(edited.reply?.message_id).toBe(turn.reply.message_id);
    expect(edited.reply?.version).toBe(2);
    // an old message, far outside the newest ones: found in Postgres
    const old = (await chat.history(await auth(), 0, 3)).messages.find((m) => m.role === "user");
    if (!old) throw new Error("no old user message");
    const oldEdit = await chat.editMessage(await auth(), {
      message_id: old.message_id,
      content: "rewritten",
    });
    expect(oldEdit.message.version).toBe(2);
    await chat.deleteMessage(await auth(), old.message_id);
    const page = await chat.history(await auth(), before.last_seq, 50);
    expect(page.messages.map((m) => [m.seq, m.content])).toEqual([
      [before.last_seq + 1, "after many turns, edited"],
      [before.last_seq + 2, edited.reply?.content],
    ]);
    expect(snapshotSizes.length).toBeGreaterThan(3);
    for (const n of snapshotSizes) expect(n).toBeLessThanOrEqual(window());
  });

  it("regenerates as on a short session when the newest messages hold neither the target's reply nor its context", async () => {
    const { chat } = observedService();
    const auth = () => chat.authorize(id, token);
    // enough turns that the session stays long once the newest user messages are deleted (their replies stay):
    // then the snapshot's newest window holds only replies
    for (let i = 0; i < 25; i++) await chat.postMessage(await auth(), `more ${i}`);
    const users = await f.db.pool.query(
      `SELECT message_id, content FROM messages
        WHERE session_id = $1 AND role = 'user' AND deleted_at IS NULL ORDER BY seq DESC LIMIT $2`,
      [id, window() + 2],
    );
    for (const u of users.rows.slice(0, window())) await chat.deleteMessage(await auth(), u.message_id);
    const [latest, earlier] = users.rows.slice(window()) as { message_id: string; content: string }[];
    const snap = await loadSnapshot(f.db.pool, id, HISTORY_CACHE_MAX, window());
    expect(snap?.complete).toBe(false);
    expect(snap?.messages.every((m) => m.role === "assistant")).toBe(true);
    const { rows: replies } = await f.db.pool.query(
      "SELECT message_id FROM messages WHERE session_id = $1 AND reply_to = $2 AND deleted_at IS NULL",
      [id, latest!.message_id],
    );
    expect(replies).toHaveLength(1);
    const countBefore = (await auth()).session.message_count;

    // a user message with a later one is refused, as on a short session
    await expect(
      chat.editMessage(await auth(), { message_id: earlier!.message_id, content: "x", regenerate: true }),
    ).rejects.toMatchObject({ code: "validation_failed" });
    // the latest one: its reply is replaced in place, answered with the conversation before it
    const edited = await chat.editMessage(await auth(), {
      message_id: latest!.message_id,
      content: "What was my last message?",
      regenerate: true,
    });
    expect(edited.reply?.message_id).toBe(replies[0].message_id);
    expect(edited.reply?.version).toBe(2);
    expect(edited.reply?.content).toContain(earlier!.content);
    const after = (await auth()).session;
    expect(after.message_count).toBe(countBefore);
    const live = await f.db.pool.query(
      "SELECT count(*)::int AS n FROM messages WHERE session_id = $1 AND reply_to = $2 AND deleted_at IS NULL",
      [id, latest!.message_id],
    );
    expect(live.rows[0].n).toBe(1);
  });
});
