import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HISTORY_CACHE_MAX } from "../../layers/chat/chat/chat-service.ts";
import { ChatError } from "../../layers/chat/chat/errors.ts";
import { loadSnapshot, regenerateFacts } from "../../layers/chat/db/chat-store.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * A session too long to read whole (here over CACHE_HISTORY_MAX_BYTES) is changed from its newest messages only: a
 * message older than them, or a regenerated message's reply, is looked up in Postgres. The same rules must hold
 * there as in a snapshot: only this session's messages, never a deleted one.
 */
let f: ChatFixture;
beforeAll(async () => {
  f = await chatFixture({ env: { CACHE_HISTORY_MAX_BYTES: "4096", RESPONDER_CONTEXT_MESSAGES: "1" } });
});
afterAll(() => f.close());

/** A session whose oldest user message is outside the newest messages a change reads of it. */
async function longSession() {
  const created = await f.chat.createSession({});
  const id = created.session.session_id;
  const auth = () => f.chat.authorize(id, created.token);
  const first = await f.chat.postMessage(await auth(), "a".repeat(3000));
  for (let i = 0; i < 4; i++) await f.chat.postMessage(await auth(), "b".repeat(500));
  return { id, auth, oldest: first.message.message_id };
}

/** Whether a change reads the session whole (else its newest messages only, and older ones from Postgres). */
const readWhole = async (sessionId: string) =>
  (await loadSnapshot(f.db.pool, sessionId, HISTORY_CACHE_MAX, 4, f.config.CACHE_HISTORY_MAX_BYTES))
    ?.complete;

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (err) => (err instanceof ChatError ? err.code : Promise.reject(err)),
  );

async function row(messageId: string) {
  const res = await f.db.pool.query(
    "SELECT session_id, content, version, deleted_at IS NOT NULL AS deleted FROM messages WHERE message_id = $1",
    [messageId],
  );
  return res.rows[0];
}

describe("a long session's old messages, looked up in Postgres", () => {
  it("another session's message is not found, for an edit or a delete, and stays as it was", async () => {
    const a = await longSession();
    const b = await longSession();
    const before = await row(b.oldest);
    expect(await codeOf(f.chat.editMessage(await a.auth(), { message_id: b.oldest, content: "taken" }))).toBe(
      "message_not_found",
    );
    expect(await codeOf(f.chat.deleteMessage(await a.auth(), b.oldest))).toBe("message_not_found");
    expect(await row(b.oldest)).toEqual(before);
  });

  it("a deleted one is not found: neither edited nor deleted again", async () => {
    const a = await longSession();
    // long enough to stay over the bound once the oldest message's text is gone, so it is looked up in Postgres
    for (let i = 0; i < 5; i++) await f.chat.postMessage(await a.auth(), "c".repeat(500));
    await f.chat.deleteMessage(await a.auth(), a.oldest);
    expect(await readWhole(a.id)).toBe(false);
    const deleted = await row(a.oldest);
    expect(deleted).toMatchObject({ deleted: true, content: "" });
    expect(await codeOf(f.chat.editMessage(await a.auth(), { message_id: a.oldest, content: "back" }))).toBe(
      "message_not_found",
    );
    expect(await codeOf(f.chat.deleteMessage(await a.auth(), a.oldest))).toBe("message_not_found");
    expect(await row(a.oldest)).toEqual(deleted);
  });

  it("an edit leaves no history of only the newest messages in the cache: a page from the start holds every message", async () => {
    const a = await longSession();
    const last = await f.chat.postMessage(await a.auth(), "c".repeat(500));
    expect(await readWhole(a.id)).toBe(false);
    await f.chat.editMessage(await a.auth(), { message_id: last.message.message_id, content: "edited" });
    const live = await f.db.pool.query(
      "SELECT seq FROM messages WHERE session_id = $1 AND deleted_at IS NULL ORDER BY seq",
      [a.id],
    );
    const page = await f.chat.history(await a.auth(), 0, 200);
    expect(page.messages.map((m) => m.seq)).toEqual(live.rows.map((r) => r.seq));
  });

  it("regenerate after its reply was deleted adds a new reply and leaves the deleted one deleted", async () => {
    const a = await longSession();
    const last = await f.chat.postMessage(await a.auth(), "c".repeat(500));
    await f.chat.deleteMessage(await a.auth(), last.reply.message_id);
    const gone = await row(last.reply.message_id);
    const edited = await f.chat.editMessage(await a.auth(), {
      message_id: last.message.message_id,
      content: "hello again",
      regenerate: true,
    });
    expect(edited.reply?.message_id).not.toBe(last.reply.message_id);
    expect(edited.reply?.seq).toBeGreaterThan(last.reply.seq);
    expect(await row(last.reply.message_id)).toEqual(gone);
    // the new reply counts: message_count is the session's live messages
    const live = await f.db.pool.query(
      "SELECT count(*)::int AS n FROM messages WHERE session_id = $1 AND deleted_at IS NULL",
      [a.id],
    );
    expect((await a.auth()).session.message_count).toBe(live.rows[0].n);
  });

  it("a regenerated message's context from Postgres is the newest live messages before it, none deleted", async () => {
    const a = await longSession();
    const prev = await f.chat.postMessage(await a.auth(), "c".repeat(500));
    const target = await f.chat.postMessage(await a.auth(), "d".repeat(500));
    await f.chat.deleteMessage(await a.auth(), prev.reply.message_id);
    const facts = await regenerateFacts(f.db.pool, target.message, 2);
    expect(facts.before.map((m) => m.seq)).toEqual([prev.message.seq - 1, prev.message.seq]);
    expect(facts).toMatchObject({ laterUser: false, reply: { message_id: target.reply.message_id } });
  });
});
