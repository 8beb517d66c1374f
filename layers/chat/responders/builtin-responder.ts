import type { ConversationInfo, Reply, Responder, Turn } from "./responder.ts";

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
  /** `earlier`: live messages older than `history` (ConversationInfo): an answer about the whole chat must say so. */
  answer: (text: string, history: Turn[], earlier: number) => Reply;
}

const userTurns = (history: Turn[]) => history.filter((t) => t.role === "user");

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/**
 * What the bot says when `earlier` messages are past the ones it was given. Their roles are unknown (the welcome
 * alone, or questions of the user's), so it names what it has, not what the user's first or previous message was.
 */
const beyond = (history: Turn[], earlier: number) =>
  `I keep our newest ${plural(history.length, "message")} in mind, and ${plural(earlier, "older one")} ${earlier === 1 ? "is" : "are"} past that`;

/** How many of the bot's visible replies start with `prefix`: picks the next fact or tip, so a repeat says more. */
const repliesStartingWith = (history: Turn[], prefix: string) =>
  history.filter((t) => t.role === "assistant" && t.content.startsWith(prefix)).length;

const FUN_FACT = "Fun fact: ";
const FUN_FACTS = [
  "a single Kafka partition keeps its events in order, which is why each chat session gets one.",
  "every message you post is stored in Postgres before you see my reply, so a lost cache loses nothing.",
  "the history you read back usually comes from a Redis cache, and only the two new messages of a turn are added to it.",
  "each endpoint of this chat is a function of its own, so reading a long history never holds up a new message.",
];

const MORE = "More about me: ";
const TIPS = [
  "I remember this conversation: ask for your first or last message, a summary, or how many messages we have exchanged.",
  "you can edit a message, and ask me to answer the edited text again, or delete a message and I forget its text.",
  "every change you make is also sent as an event, so other systems can follow the conversation.",
  "that is all there is to me: I am a small built-in assistant, and a larger model can take my place.",
];
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
        "I can greet you, remember what you said in this conversation (ask for your first or last message, a summary, or how many messages we have exchanged), and answer simple questions. Edit or delete a message and my next answers go by what it says now (my earlier replies stay as they were: delete them too, or regenerate the reply when you edit your latest message).",
      suggestions: HELP_SUGGESTIONS,
    }),
  },
  {
    test: /\b(first|earliest) (message|thing|question)\b/i,
    answer: (_text, history, earlier) => {
      const first = userTurns(history)[0];
      // with older messages left out, the earliest one it has (before this question) need not be the first
      const seen = userTurns(history).slice(0, -1)[0];
      return {
        content:
          earlier > 0
            ? seen
              ? `The earliest message of yours I still have is ${quote(seen.content)}: ${beyond(history, earlier)}.`
              : `I have no earlier message of yours: ${beyond(history, earlier)}.`
            : first
              ? `Your first message was ${quote(first.content)}.`
              : "You haven't said anything yet.",
        suggestions: ["What was my last message?", "How many messages so far?", "Summarize our conversation"],
      };
    },
  },
  {
    test: /\b(last|previous) (message|thing|question)\b/i,
    answer: (_text, history, earlier) => {
      const before = userTurns(history).slice(0, -1);
      const last = before[before.length - 1];
      return {
        content: last
          ? `Before this, you said ${quote(last.content)}.`
          : earlier > 0
            ? `I have no earlier message of yours: ${beyond(history, earlier)}.`
            : "This is your first message.",
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
    answer: (_text, history, earlier) => {
      const users = userTurns(history).length;
      const bot = history.length - users;
      const split = `${plural(users, "message")} from you and ${bot} from me`;
      return {
        content:
          earlier > 0
            ? `So far we have exchanged ${earlier + history.length} messages. ${beyond(history, earlier)}: in those, ${split}.`
            : `So far I can see ${split}.`,
        suggestions: ["Summarize our conversation", "What was my first message?", "Tell me more"],
      };
    },
  },
  {
    test: /\b(summar(y|ize|ise)|talked about|recap)\b/i,
    answer: (_text, history, earlier) => {
      const topics = userTurns(history)
        .slice(0, -1)
        .map((t) => quote(t.content, 40));
      const said = topics.join(", ");
      return {
        content:
          earlier > 0
            ? topics.length
              ? `In what I still have, you said: ${said}. ${beyond(history, earlier)}.`
              : `I have no earlier message of yours: ${beyond(history, earlier)}.`
            : topics.length
              ? `Here is what you said so far: ${said}.`
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
    // "Tell me another" is what a fun fact suggests: the next fact, round the list.
    test: /\b(fun fact|joke)\b|^\s*(tell me another( one)?|another (one|fact))[\s?.!]*$/i,
    answer: (_text, history) => {
      const n = repliesStartingWith(history, FUN_FACT);
      return {
        content: `${FUN_FACT}${FUN_FACTS[n % FUN_FACTS.length]}`,
        suggestions: ["Tell me another", "What can you do?", "Thanks!"],
      };
    },
  },
  {
    // Whole requests only: "How about you?" or "Tell me about Kafka" are not this question.
    test: /^\s*(tell me about (this chat|you(rself)?)|who are you|what is this( chat)?)[\s?.!]*$/i,
    answer: () => ({
      content:
        "This chat keeps our conversation: every message is stored, you can read it back, edit or delete any message, and I answer each message you send with three suggestions for what to say next.",
      suggestions: ["What can you do?", "Tell me more", "Tell me a fun fact"],
    }),
  },
  {
    // What the fallback and several replies suggest: one tip at a time, a new one each time it is asked.
    // One class for the tail ([\s?.!]*, here and above): `\s*[?.!]*\s*$` backtracks over every split of a long
    // run of white space, ≈ 160 ms on 8,000 characters of it.
    // The bare request only: "Tell me more about Kafka?" is a question about something else.
    test: /^\s*tell me more[\s?.!]*$/i,
    answer: (_text, history) => {
      const n = repliesStartingWith(history, MORE);
      const last = n >= TIPS.length - 1;
      return {
        content: `${MORE}${TIPS[Math.min(n, TIPS.length - 1)]}`,
        suggestions: last
          ? ["Summarize our conversation", "Tell me a fun fact", "Goodbye"]
          : ["Tell me more", "Summarize our conversation", "Tell me a fun fact"],
      };
    },
  },
  {
    test: /\?\s*$/,
    answer: (text) => ({
      content: `Good question. I'm a simple built-in assistant, so I can't look that up, but you asked ${quote(text)}. Type 'help' to see what I can answer.`,
      suggestions: ["What can you do?", "Summarize our conversation", "Tell me more"],
    }),
  },
];

/** The fallback's opening: what a message no rule understands gets. */
export const FALLBACK_PREFIX = "I hear you: ";

export function builtinReply(history: Turn[], info?: ConversationInfo): Reply {
  const text = history[history.length - 1]?.content ?? "";
  const earlier = info?.earlier ?? 0;
  for (const rule of rules) if (rule.test.test(text)) return rule.answer(text, history, earlier);
  return {
    content: `${FALLBACK_PREFIX}${quote(text)}. Tell me more, or type 'help' to see what I can do.`,
    suggestions: DEFAULT_SUGGESTIONS,
  };
}

export const builtinResponder: Responder = {
  name: "builtin",
  respond: async (history, info) => builtinReply(history, info),
};
