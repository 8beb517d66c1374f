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

  it("past its context, names what it still has, not the oldest of it as the chat's first", () => {
    const window = [user("topic 7"), bot("ok"), user("topic 8"), bot("ok")];
    const ask = (text: string, turns = window, earlier = 12) =>
      builtinReply([...turns, user(text)], { earlier }).content;
    const beyond = "I keep our newest 5 messages in mind, and 12 older ones are past that";
    expect(ask("what was my first message?")).toBe(
      `The earliest message of yours I still have is "topic 7": ${beyond}.`,
    );
    expect(ask("what was my last message?")).toContain('"topic 8"');
    expect(ask("what was my last message?", [], 1)).toBe(
      "I have no earlier message of yours: I keep our newest 1 message in mind, and 1 older one is past that.",
    );
    expect(ask("how many messages so far?")).toBe(
      `So far we have exchanged 17 messages. ${beyond}: in those, 3 messages from you and 2 from me.`,
    );
    expect(ask("summarize please")).toBe(`In what I still have, you said: "topic 7", "topic 8". ${beyond}.`);
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

  it("keeps a turn that fills the character bound exactly", () => {
    expect(boundContext([user("x".repeat(50)), user("y".repeat(50))], 10, 100)).toHaveLength(2);
  });

  it("keeps the newest turn even when it alone is over the character bound", () => {
    // the responder must always see the message it answers
    expect(boundContext([user("a"), user("b".repeat(200))], 10, 100).map((t) => t.content[0])).toEqual(["b"]);
  });

  it("stops at the first turn over the bound: the context is never a gapped one", () => {
    const turns = [user("a"), user("b".repeat(20)), user("c")];
    expect(boundContext(turns, 10, 15).map((t) => t.content[0])).toEqual(["c"]);
  });
});

describe("built-in responder: quoting and counting", () => {
  const fallbackOf = (quoted: string) =>
    `${FALLBACK_PREFIX}"${quoted}". Tell me more, or type 'help' to see what I can do.`;

  it("quotes up to 80 characters whole and cuts a longer message to 79 and an ellipsis", () => {
    expect(builtinReply([user("a".repeat(80))]).content).toBe(fallbackOf("a".repeat(80)));
    expect(builtinReply([user("a".repeat(81))]).content).toBe(fallbackOf(`${"a".repeat(79)}…`));
  });

  it("quotes a message on one line, its runs of white space collapsed and its ends trimmed", () => {
    expect(builtinReply([user("  one \n\n\t two  ")]).content).toBe(fallbackOf("one two"));
  });

  it("counts the bot's turns and says 'message' for one", () => {
    expect(builtinReply([bot(WELCOME.content), user("how many messages so far?")]).content).toBe(
      "So far I can see 1 message from you and 1 from me.",
    );
    const history = [bot(WELCOME.content), user("a"), bot("b"), user("c"), bot("d")];
    expect(builtinReply([...history, user("how many messages?")]).content).toContain(
      "3 messages from you and 3 from me",
    );
  });

  it("summarizes what was said before the request, each quoted to 40 characters", () => {
    const long = "x".repeat(60);
    const content = builtinReply([
      bot(WELCOME.content),
      user(long),
      bot("ok"),
      user("summarize please"),
    ]).content;
    // the request itself is not part of the summary
    expect(content).toBe(`Here is what you said so far: "${"x".repeat(39)}…".`);
    expect(builtinReply([bot(WELCOME.content), user("recap")]).content).toMatch(/nothing to summarize/);
  });

  it("picks the next fact and tip from the bot's own replies only, not from the user's words", () => {
    // a user quoting the prefix does not move the bot on
    const history = [bot(WELCOME.content), user("Fun fact: cats sleep a lot"), bot("ok")];
    const first = builtinReply([bot(WELCOME.content), user("tell me a fun fact")]).content;
    expect(builtinReply([...history, user("tell me a fun fact")]).content).toBe(first);
  });

  it("goes round the facts again after the last, and stays on its last tip, suggesting no more", () => {
    const ask = (text: string, times: number) => {
      const history: Turn[] = [bot(WELCOME.content)];
      const replies = [];
      for (let i = 0; i < times; i++) {
        const reply = builtinReply([...history, user(text)]);
        replies.push(reply);
        history.push(user(text), bot(reply.content));
      }
      return replies;
    };
    const facts = ask("Tell me another", 5).map((r) => r.content);
    expect(facts[4]).toBe(facts[0]);
    const tips = ask("Tell me more", 5);
    // the fourth tip is the last: it and any later ask say "that is all" and stop offering more
    expect(tips[4]?.content).toBe(tips[3]?.content);
    expect(tips[3]?.content).toMatch(/that is all/);
    expect(tips[2]?.suggestions).toContain("Tell me more");
    for (const last of tips.slice(3)) expect(last.suggestions).not.toContain("Tell me more");
  });

  it("matches whole words and a question with white space after its mark", () => {
    const reply = (text: string) => builtinReply([bot(WELCOME.content), user(text)]).content;
    // "hi" inside "history", "first question" inside "first questionnaire" are not those requests
    expect(reply("history of Rome")).toMatch(new RegExp(`^${FALLBACK_PREFIX}`));
    expect(reply("my first questionnaire")).toMatch(new RegExp(`^${FALLBACK_PREFIX}`));
    expect(reply("Is it raining? ")).toMatch(/^Good question/);
  });
});
