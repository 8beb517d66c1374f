import { describe, expect, it } from "vitest";
import { builtinReply, FALLBACK_PREFIX, WELCOME } from "../../layers/chat/responders/builtin-responder.ts";
import { boundContext, type Turn } from "../../layers/chat/responders/responder.ts";

const user = (content: string): Turn => ({ role: "user", content });
const bot = (content: string): Turn => ({ role: "assistant", content });

describe("built-in responder", () => {
  it("greets, helps and falls back, always with three suggestions", () => {
    for (const text of ["hello", "help", "something random", "Is it raining?"]) {
      const reply = builtinReply([bot(WELCOME.content), user(text)]);
      expect(reply.content.length).toBeGreaterThan(0);
      expect(reply.suggestions).toHaveLength(3);
    }
    expect(builtinReply([user("hello")]).content).toMatch(/help you/i);
    expect(builtinReply([user("what can you do")]).content).toMatch(/remember/);
  });

  it("answers questions about the conversation from the history it is given", () => {
    const history = [bot(WELCOME.content), user("I like tea"), bot("ok"), user("and cake"), bot("ok")];
    expect(builtinReply([...history, user("what was my first message?")]).content).toContain('"I like tea"');
    expect(builtinReply([...history, user("what was my last message?")]).content).toContain('"and cake"');
    expect(builtinReply([...history, user("how many messages so far?")]).content).toContain(
      "3 messages from you",
    );
    expect(builtinReply([...history, user("summarize please")]).content).toContain('"and cake"');
  });

  it("understands every reply it suggests, wherever the conversation has gone", () => {
    // Walk every suggestion the bot can offer, from the welcome on, three turns deep.
    const seen = new Set<string>();
    let frontier = [{ history: [bot(WELCOME.content)], offered: WELCOME.suggestions }];
    for (let depth = 0; depth < 3; depth++) {
      const next: typeof frontier = [];
      for (const { history, offered } of frontier) {
        for (const text of offered) {
          seen.add(text);
          const reply = builtinReply([...history, user(text)]);
          expect(reply.content, `"${text}" after ${history.length} turns`).not.toMatch(
            new RegExp(`^${FALLBACK_PREFIX}`),
          );
          next.push({ history: [...history, user(text), bot(reply.content)], offered: reply.suggestions });
        }
      }
      frontier = next.slice(0, 200);
    }
    for (const s of ["Tell me more", "Tell me another", "Tell me about this chat"]) expect(seen).toContain(s);
  });

  it("says something new each time it is asked for more or for another fact", () => {
    const ask = (text: string, times: number) => {
      const history: Turn[] = [bot(WELCOME.content)];
      const answers: string[] = [];
      for (let i = 0; i < times; i++) {
        const reply = builtinReply([...history, user(text)]);
        answers.push(reply.content);
        history.push(user(text), bot(reply.content));
      }
      return answers;
    };
    const more = ask("Tell me more", 4);
    expect(new Set(more).size).toBe(4);
    const facts = ask("Tell me another", 4);
    expect(new Set(facts).size).toBe(4);
  });

  it("keeps the suggested replies' answers for those requests, not for sentences that contain their words", () => {
    const reply = (text: string) => builtinReply([bot(WELCOME.content), user(text)]).content;
    expect(reply("Tell me more about Kafka?")).toMatch(/^Good question/);
    expect(reply("Can you tell me more about Postgres?")).toMatch(/^Good question/);
    expect(reply("How about you?")).toMatch(/^Good question/);
    expect(reply("I need another one of those")).toMatch(new RegExp(`^${FALLBACK_PREFIX}`));
    expect(reply("Is this another fact?")).toMatch(/^Good question/);
    expect(reply("who are you?")).toMatch(/^This chat keeps/);
    expect(reply("tell me another joke")).toMatch(/^Fun fact/);
    expect(reply("Tell me more!")).toMatch(/^More about me/);
    expect(reply("Tell me more?")).toMatch(/^More about me/);
    expect(reply("tell me another?")).toMatch(/^Fun fact/);
    expect(reply("Tell me another one")).toMatch(/^Fun fact/);
  });

  it("is deterministic", () => {
    const h = [user("tell me a joke")];
    expect(builtinReply(h)).toEqual(builtinReply(h));
  });

  it("never cuts an emoji in half when quoting", () => {
    const reply = builtinReply([user("😀".repeat(200))]);
    expect(reply.content.isWellFormed()).toBe(true);
  });
});

describe("boundContext", () => {
  it("keeps the newest turns within the message and character bounds, oldest first", () => {
    const turns = Array.from({ length: 10 }, (_, i) => user(`m${i}`));
    expect(boundContext(turns, 3, 1000).map((t) => t.content)).toEqual(["m7", "m8", "m9"]);
    expect(
      boundContext([user("x".repeat(50)), user("y".repeat(50)), user("z")], 10, 60).map((t) => t.content[0]),
    ).toEqual(["y", "z"]);
  });
});
