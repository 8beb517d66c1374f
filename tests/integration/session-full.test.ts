import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatError } from "../../layers/chat/chat/errors.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * A session takes at most MAX_SESSION_MESSAGES messages over its life, deleted ones included: what one session
 * costs to keep and to erase (one statement, under the statement timeout) stays bounded.
 */
const MAX = 7;
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

describe(`a session of at most ${MAX} messages`, () => {
  it("takes posts up to the bound, then answers session_full and changes nothing; a delete frees no room", async () => {
    const created = await f.chat.createSession({}); // the welcome message: seq 1
    const id = created.session.session_id;
    const auth = () => f.chat.authorize(id, created.token);
    const turns = [];
    for (let i = 0; i < 3; i++) turns.push(await f.chat.postMessage(await auth(), `turn ${i}`)); // seq 2–7
    expect((await auth()).session.last_seq).toBe(MAX);
    const before = await f.db.pool.query("SELECT count(*)::int AS n FROM messages WHERE session_id = $1", [
      id,
    ]);
    expect(await code(f.chat.postMessage(await auth(), "one more"))).toBe("session_full");
    const after = await f.db.pool.query("SELECT count(*)::int AS n FROM messages WHERE session_id = $1", [
      id,
    ]);
    expect(after.rows[0].n).toBe(before.rows[0].n);
    await f.chat.deleteMessage(await auth(), turns[0]?.message.message_id as string);
    expect(await code(f.chat.postMessage(await auth(), "after a delete"))).toBe("session_full");
    // edits that add nothing still work
    const last = turns[2]?.message.message_id as string;
    expect(await code(f.chat.editMessage(await auth(), { message_id: last, content: "edited" }))).toBe("ok");
  });
});
