import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatError } from "../../layers/chat/chat/errors.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * A session takes at most MAX_SESSION_MESSAGES messages over its life, deleted ones included: what one session
 * costs to keep and to erase (one statement, under the statement timeout) stays bounded.
 */
// Even: a post adds two messages to a session that starts at seq 1, so it reaches last_seq MAX − 1, where one more
// post would need MAX + 1; a regenerated reply (one message) is what reaches MAX exactly.
const MAX = 6;
let f: ChatFixture;
beforeAll(async () => {
  f = await chatFixture({ env: { MAX_SESSION_MESSAGES: String(MAX) } });
});
afterAll(() => f.close());

const code = (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (e: unknown) => (e instanceof ChatError ? e.code : e),
  );

/** Everything a refused change must leave as it was: the session's counters and each of its messages. */
async function stateOf(sessionId: string) {
  const session = await f.db.pool.query(
    "SELECT last_seq, message_count, generation FROM sessions WHERE session_id = $1",
    [sessionId],
  );
  const messages = await f.db.pool.query(
    `SELECT seq, role, content, version, deleted_at IS NOT NULL AS deleted
       FROM messages WHERE session_id = $1 ORDER BY seq`,
    [sessionId],
  );
  return { session: session.rows[0], messages: messages.rows };
}

describe(`a session of at most ${MAX} messages`, () => {
  it("takes posts while both messages fit, answers session_full at last_seq MAX − 1 and changes nothing; a delete frees no room", async () => {
    const created = await f.chat.createSession({}); // the welcome message: seq 1
    const id = created.session.session_id;
    const auth = () => f.chat.authorize(id, created.token);
    const turns = [];
    for (let i = 0; i < 2; i++) turns.push(await f.chat.postMessage(await auth(), `turn ${i}`)); // seq 2–5
    expect((await auth()).session.last_seq).toBe(MAX - 1);
    // one message of room is left, and a post needs two
    const before = await stateOf(id);
    expect(before.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(await code(f.chat.postMessage(await auth(), "one more"))).toBe("session_full");
    expect(await stateOf(id)).toEqual(before);
    await f.chat.deleteMessage(await auth(), turns[0]?.message.message_id as string);
    const afterDelete = await stateOf(id);
    expect(await code(f.chat.postMessage(await auth(), "after a delete"))).toBe("session_full");
    expect(await stateOf(id)).toEqual(afterDelete);
    // edits that add nothing still work
    const last = turns[1]?.message.message_id as string;
    expect(await code(f.chat.editMessage(await auth(), { message_id: last, content: "edited" }))).toBe("ok");
  });

  it("a regenerated reply that replaces a deleted one takes a message of room: it fits up to MAX, then session_full", async () => {
    const created = await f.chat.createSession({}); // seq 1
    const id = created.session.session_id;
    const auth = () => f.chat.authorize(id, created.token);
    await f.chat.postMessage(await auth(), "first"); // seq 2–3
    const question = await f.chat.postMessage(await auth(), "second"); // seq 4–5
    const regenerate = async (content: string) =>
      f.chat.editMessage(await auth(), {
        message_id: question.message.message_id,
        content,
        regenerate: true,
      });
    // with its reply deleted, a regenerate inserts a new one: seq 6, the last that fits
    await f.chat.deleteMessage(await auth(), question.reply.message_id);
    const fits = await regenerate("second, again");
    expect(fits.reply).toMatchObject({ seq: MAX, role: "assistant", reply_to: question.message.message_id });
    expect((await auth()).session.last_seq).toBe(MAX);
    // that reply deleted too, the next one would be seq 7: refused, and the edit with it
    await f.chat.deleteMessage(await auth(), fits.reply?.message_id as string);
    const before = await stateOf(id);
    expect(await code(regenerate("second, once more"))).toBe("session_full");
    expect(await stateOf(id)).toEqual(before);
  });
});
