import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * A change that loses its optimistic attempt to a concurrent one is planned again under the session's row lock,
 * in a transaction. For a session too long to read whole (here over CACHE_HISTORY_MAX_BYTES), an edit or delete
 * of an old message looks that message up in Postgres: it must do so on the transaction's own connection. With
 * the pool's only other connection (DB_POOL_MAX=1: none) it would wait for one until the connect timeout.
 */
let f: ChatFixture;
beforeAll(async () => {
  f = await chatFixture({
    redisUrl: null,
    env: { DB_POOL_MAX: "1", CACHE_HISTORY_MAX_BYTES: "4096", RESPONDER_CONTEXT_MESSAGES: "1" },
  });
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

/** The next change's optimistic statement finds its generation moved on (as after a concurrent change). */
function loseNextOptimisticAttempt(sessionId: string): void {
  const pool = f.servicePool;
  const query = pool.query.bind(pool) as (...a: unknown[]) => Promise<unknown>;
  pool.query = (async (q: { name?: string }, ...rest: unknown[]) => {
    if (typeof q === "object" && q.name?.startsWith("apply_session_change_")) {
      pool.query = query as typeof pool.query;
      await f.db.pool.query("UPDATE sessions SET generation = generation + 1 WHERE session_id = $1", [
        sessionId,
      ]);
    }
    return query(q, ...rest);
  }) as typeof pool.query;
}

describe("a long session's old message, changed under the row lock", () => {
  it("an edit finds it through the transaction's connection", async () => {
    const s = await longSession();
    loseNextOptimisticAttempt(s.id);
    const edited = await f.chat.editMessage(await s.auth(), { message_id: s.oldest, content: "edited" });
    expect(edited.message).toMatchObject({ message_id: s.oldest, content: "edited", version: 2 });
  });

  it("a regenerate reads its reply and context through the transaction's connection", async () => {
    const s = await longSession();
    const last = await f.chat.postMessage(await s.auth(), "b".repeat(500));
    loseNextOptimisticAttempt(s.id);
    const edited = await f.chat.editMessage(await s.auth(), {
      message_id: last.message.message_id,
      content: "again",
      regenerate: true,
    });
    expect(edited.reply).toMatchObject({ message_id: last.reply.message_id, version: 2 });
  });

  it("a delete finds it through the transaction's connection", async () => {
    const s = await longSession();
    loseNextOptimisticAttempt(s.id);
    await f.chat.deleteMessage(await s.auth(), s.oldest);
    const row = await f.db.pool.query(
      "SELECT deleted_at IS NOT NULL AS deleted FROM messages WHERE message_id = $1",
      [s.oldest],
    );
    expect(row.rows[0]?.deleted).toBe(true);
  });
});
