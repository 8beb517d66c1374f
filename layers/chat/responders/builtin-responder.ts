import type { Reply, Responder, Turn } from "./responder.ts";

/**
 * The offline bot: deterministic rules over the user's message and the visible history.
 * No network, no randomness, sub-millisecond.
 */
export const WELCOME: Reply = {
  content:
    "Hello! I'm the chat assistant. Ask me anything, type 'help' to see what I can do, or ask what we have talked about so far.",
  suggestions: ["What can you do?", "Tell me about this chat", "Hello!"],
};

const HELP_SUGGESTIONS = [
  "Summarize our conversation",
  "What was my first message?",
  "How many messages so far?",
];
const DEFAULT_SUGGESTIONS = ["Tell me more", "Summarize our conversation", "What can you do?"];

interface Rule {
  test: RegExp;
  answer: (text: string, history: Turn[]) => Reply;
}

const userTurns = (history: Turn[]) => history.filter((t) => t.role === "user");
const quote = (s: string, max = 80) => {
  // by code points, so an emoji is never cut in half (a lone surrogate is not valid JSON for Postgres)
  const chars = Array.from(s.replace(/\s+/g, " ").trim());
  return `"${chars.length > max ? `${chars.slice(0, max - 1).join("")}…` : chars.join("")}"`;
};

const rules: Rule[] = [
  {
    test: /^\s*(hi|hello|hey|good (morning|afternoon|evening)|howdy)\b/i,
    answer: () => ({
      content: "Hi there! How can I help you today?",
      suggestions: ["What can you do?", "Tell me a fun fact", "Summarize our conversation"],
    }),
  },
  {
    test: /\b(help|what can you do|commands?)\b/i,
    answer: () => ({
      content:
        "I can greet you, remember what you said in this conversation (ask for your first or last message, a summary, or how many messages we have exchanged), and answer simple questions. Edit or delete a message and I forget the old text.",
      suggestions: HELP_SUGGESTIONS,
    }),
  },
  {
    test: /\b(first|earliest) (message|thing|question)\b/i,
    answer: (_text, history) => {
      const first = userTurns(history)[0];
      return {
        content: first ? `Your first message was ${quote(first.content)}.` : "You haven't said anything yet.",
        suggestions: ["What was my last message?", "How many messages so far?", "Summarize our conversation"],
      };
    },
  },
  {
    test: /\b(last|previous) (message|thing|question)\b/i,
    answer: (_text, history) => {
      const before = userTurns(history).slice(0, -1);
      const last = before[before.length - 1];
      return {
        content: last ? `Before this, you said ${quote(last.content)}.` : "This is your first message.",
        suggestions: [
          "What was my first message?",
          "Summarize our conversation",
          "How many messages so far?",
        ],
      };
    },
  },
  {
    test: /\bhow many (messages|things)\b/i,
    answer: (_text, history) => {
      const users = userTurns(history).length;
      const bot = history.length - users;
      return {
        content: `So far I can see ${users} message${users === 1 ? "" : "s"} from you and ${bot} from me.`,
        suggestions: ["Summarize our conversation", "What was my first message?", "Tell me more"],
      };
    },
  },
  {
    test: /\b(summar(y|ize|ise)|talked about|recap)\b/i,
    answer: (_text, history) => {
      const topics = userTurns(history)
        .slice(0, -1)
        .map((t) => quote(t.content, 40));
      return {
        content: topics.length
          ? `Here is what you said so far: ${topics.join(", ")}.`
          : "We have only just started: nothing to summarize yet.",
        suggestions: ["How many messages so far?", "What was my first message?", "Thanks!"],
      };
    },
  },
  {
    test: /\b(thanks|thank you|thx|cheers)\b/i,
    answer: () => ({
      content: "You're welcome! Anything else?",
      suggestions: ["What can you do?", "Summarize our conversation", "Goodbye"],
    }),
  },
  {
    test: /\b(bye|goodbye|see you)\b/i,
    answer: () => ({
      content: "Goodbye! Your conversation is saved if you want to come back.",
      suggestions: ["Hello again!", "Summarize our conversation", "What can you do?"],
    }),
  },
  {
    test: /\b(fun fact|joke)\b/i,
    answer: () => ({
      content:
        "Fun fact: a single Kafka partition keeps its events in order, which is why each chat session gets one.",
      suggestions: ["Tell me another", "What can you do?", "Thanks!"],
    }),
  },
  {
    test: /\?\s*$/,
    answer: (text) => ({
      content: `Good question. I'm a simple built-in assistant, so I can't look that up, but you asked ${quote(text)}. Type 'help' to see what I can answer.`,
      suggestions: ["What can you do?", "Summarize our conversation", "Tell me more"],
    }),
  },
];

export function builtinReply(history: Turn[]): Reply {
  const text = history[history.length - 1]?.content ?? "";
  for (const rule of rules) if (rule.test.test(text)) return rule.answer(text, history);
  return {
    content: `I hear you: ${quote(text)}. Tell me more, or type 'help' to see what I can do.`,
    suggestions: DEFAULT_SUGGESTIONS,
  };
}

export const builtinResponder: Responder = {
  name: "builtin",
  respond: async (history) => builtinReply(history),
};
