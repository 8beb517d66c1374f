import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { builtinReply } from "../../layers/chat/responders/builtin-responder.ts";
import type { Reply, Responder } from "../../layers/chat/responders/responder.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * A model's reply is not checked like a user's text, yet Postgres refuses NUL characters and lone surrogates (in
 * text and jsonb alike): a turn whose reply held one failed with a 500, and so did every retry of it.
 */
let next: Reply = { content: "", suggestions: [] };
const scripted: Responder = { name: "scripted", respond: async () => next };
let f: ChatFixture;
beforeAll(async () => {
  f = await chatFixture({ responder: scripted });
});
afterAll(() => f.close());

async function turn(reply: Reply) {
  next = reply;
  const created = await f.chat.createSession({});
  const id = created.session.session_id;
  const posted = await f.chat.postMessage(await f.chat.authorize(id, created.token), "hello");
  const stored = await f.db.pool.query("SELECT content FROM messages WHERE message_id = $1", [
    posted.reply.message_id,
  ]);
  const session = await f.db.pool.query("SELECT suggestions FROM sessions WHERE session_id = $1", [id]);
  return { posted, stored: stored.rows[0].content as string, suggestions: session.rows[0].suggestions };
}

describe("a responder's reply that Postgres cannot store as it is", () => {
  it("is stored and answered without its NUL characters, lone surrogates replaced", async () => {
    const { posted, stored, suggestions } = await turn({
      content: "Sure: a\u0000b \ud83d",
      suggestions: ["next\u0000 one", "half \udc00", "\u0000"],
    });
    expect(posted.reply.content).toBe("Sure: ab \ufffd");
    expect(stored).toBe(posted.reply.content);
    expect(posted.suggestions).toEqual(["next one", "half \ufffd"]);
    expect(suggestions).toEqual(posted.suggestions);
  });

  it("gets the built-in reply for a blank one, invisible characters included, and drops blank suggestions", async () => {
    const { posted } = await turn({
      content: " \u200b\u2060 ",
      suggestions: ["Go on", "\u200b", "\ufeff "],
    });
    expect(posted.reply.content).toBe(builtinReply([{ role: "user", content: "hello" }]).content);
    const visible = await turn({ content: "Fine.", suggestions: ["Go on", "\u200b", "\ufeff "] });
    expect(visible.posted.suggestions).toEqual(["Go on"]);
  });

  it("gets the built-in reply when nothing storable is left of it", async () => {
    const { posted, stored } = await turn({ content: "\u0000\u0000", suggestions: [] });
    const expected = builtinReply([{ role: "user", content: "hello" }]);
    expect(posted.reply.content).toBe(expected.content);
    expect(stored).toBe(expected.content);
  });
});
