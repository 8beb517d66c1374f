import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HISTORY_CACHE_MAX } from "../../layers/chat/chat/chat-service.ts";
import { loadSnapshot } from "../../layers/chat/db/chat-store.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * The bot sees only the newest messages (RESPONDER_CONTEXT_MESSAGES, RESPONDER_CONTEXT_CHARS). Asked about the
 * conversation (its first message, how many, a summary), it must not state as the whole chat's what holds for
 * those only: the service tells it how many older messages it does not see.
 */
let f: ChatFixture;
/** A session over CACHE_HISTORY_MAX_BYTES: a regenerate reads its context from Postgres, not a snapshot. */
let large: ChatFixture;
beforeAll(async () => {
  const env = { RESPONDER_CONTEXT_MESSAGES: "4" };
  [f, large] = await Promise.all([
    chatFixture({ env }),
    chatFixture({ env: { ...env, CACHE_HISTORY_MAX_BYTES: "4096" } }),
  ]);
});
afterAll(() => Promise.all([f.close(), large.close()]));

async function session(fx: ChatFixture, posts: string[]) {
  const created = await fx.chat.createSession({});
  const id = created.session.session_id;
  const auth = () => fx.chat.authorize(id, created.token);
  const post = async (content: string) => fx.chat.postMessage(await auth(), content);
  for (const text of posts) await post(text);
  const count = async () => fx.chat.getSession(await auth()).message_count;
  return { auth, post, count };
}

describe("the bot's answers about the conversation, past its context", () => {
  it("do not take the oldest message it sees for the first one, nor its count for the chat's", async () => {
    const s = await session(f, ["topic 1", "topic 2", "topic 3", "topic 4"]);
    const first = await s.post("What was my first message?");
    expect(first.reply.content).not.toMatch(/^Your first message was/);
    expect(first.reply.content).toMatch(
      /^The earliest message of yours I still have is "topic 4": .* 6 older ones are past that/,
    );

    const counted = await s.post("How many messages so far?");
    // the chat, this question included, before its reply: the session's count less the reply
    expect(counted.reply.content).toContain(`we have exchanged ${(await s.count()) - 1} messages`);

    const summary = await s.post("Summarize our conversation");
    expect(summary.reply.content).not.toMatch(/^Here is what you said so far/);
  });

  it("nor say a message is the first when a long one before it is past the character bound", async () => {
    const s = await session(f, ["x".repeat(7990)]);
    const last = await s.post("What was my last message?");
    expect(last.reply.content).not.toBe("This is your first message.");
  });

  it("still state the facts of a chat short enough to see whole", async () => {
    const s = await session(f, ["topic 1"]);
    expect((await s.post("What was my first message?")).reply.content).toBe(
      'Your first message was "topic 1".',
    );
    const t = await session(f, ["topic 1"]);
    expect((await t.post("How many messages so far?")).reply.content).toBe(
      "So far I can see 2 messages from you and 2 from me.",
    );
  });

  it("on a regenerated reply, from a snapshot or from Postgres, count the chat up to the edited message", async () => {
    for (const fx of [f, large]) {
      const s = await session(fx, ["c".repeat(1000), "d".repeat(1000), "e".repeat(1000), "f".repeat(1000)]);
      const asked = await s.post("What was your name again?");
      const max = fx.config.CACHE_HISTORY_MAX_BYTES;
      const whole = await loadSnapshot(fx.db.pool, asked.message.session_id, HISTORY_CACHE_MAX, 10, max);
      expect(whole?.complete).toBe(fx === f);
      const edited = await fx.chat.editMessage(await s.auth(), {
        message_id: asked.message.message_id,
        content: "How many messages so far?",
        regenerate: true,
      });
      // every live message but the reply being replaced
      expect(edited.reply?.content).toContain(`we have exchanged ${(await s.count()) - 1} messages`);
    }
  });
});
