import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { builtinResponder } from "../../layers/chat/responders/builtin-responder.ts";
import type { Responder, Turn } from "../../layers/chat/responders/responder.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

// A post hands the responder the newest turns; from the cache they are read off the end of the cached text
// (history-text.ts lastMessagesFromText) instead of parsing the whole history. Both paths must agree.
const seen: Turn[][] = [];
const recording: Responder = {
  name: "recording",
  respond(history) {
    seen.push(history);
    return builtinResponder.respond(history);
  },
};
const env = { RESPONDER_CONTEXT_MESSAGES: "4" };
let cached: ChatFixture;
let uncached: ChatFixture;
beforeAll(async () => {
  [cached, uncached] = await Promise.all([
    chatFixture({ responder: recording, env }),
    chatFixture({ responder: recording, env, redisUrl: null }),
  ]);
});
afterAll(() => Promise.all([cached.close(), uncached.close()]));

/** Runs the same conversation (posts, an edit, a delete) and returns what the responder saw at each post. */
async function conversation(fx: ChatFixture): Promise<{ contexts: Turn[][]; deleted: string }> {
  seen.length = 0;
  const created = await fx.chat.createSession({});
  const id = created.session.session_id;
  const auth = () => fx.chat.authorize(id, created.token);
  const posted = [];
  for (const text of ["one", "two", "three"]) posted.push(await fx.chat.postMessage(await auth(), text));
  await fx.chat.editMessage(await auth(), {
    message_id: (posted[1] as { message: { message_id: string } }).message.message_id,
    content: "two, edited",
  });
  const deleted = posted[2]?.reply as { message_id: string; content: string };
  await fx.chat.deleteMessage(await auth(), deleted.message_id);
  for (const text of ["four", "five"]) await fx.chat.postMessage(await auth(), text);
  return { contexts: seen.splice(0).map((turns) => turns.map((t) => ({ ...t }))), deleted: deleted.content };
}

describe("responder context on a post", () => {
  it("is the newest turns of the current history, the same with and without the cache", async () => {
    const fromCache = await conversation(cached);
    const fromPostgres = await conversation(uncached);
    expect(fromCache.contexts).toEqual(fromPostgres.contexts);
    const [atFour, atFive] = fromCache.contexts.slice(-2) as [Turn[], Turn[]];
    expect(atFive).toHaveLength(4);
    expect(atFive.at(-1)).toEqual({ role: "user", content: "five" });
    // the edit is seen in its current form, the deleted reply not at all, older turns are cut off
    expect(atFour.map((t) => t.content)).toEqual(["two, edited", expect.any(String), "three", "four"]);
    expect([...atFour, ...atFive].map((t) => t.content)).not.toContain(fromCache.deleted);
    expect(atFive.map((t) => t.content)).not.toContain("one");
  });
});
