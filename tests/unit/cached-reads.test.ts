import { describe, expect, it } from "vitest";
import {
  authSnapshot,
  headBytesFor,
  newestMessages,
  type ReadSession,
} from "../../layers/chat/chat/cached-reads.ts";
import { historyLines, historyText } from "../../layers/chat/chat/history-text.ts";
import type { Message, SessionRecord } from "../../layers/chat/chat/types.ts";

// What a change plans from, given what the request's cache read found: the end of a long history only where it
// provably holds what the plan reads (the responder's newest messages, or its character bound), else the whole.
const session = { session_id: "s", generation: 7 } as SessionRecord;
const message = (seq: number, content = `message ${seq}`): Message => ({
  message_id: `m${seq}`,
  session_id: "s",
  seq,
  role: seq % 2 ? "user" : "assistant",
  content,
  version: 1,
  created_at: "2026-11-29T00:00:00.000Z",
  edited_at: null,
  reply_to: null,
});
const messages = (from: number, to: number, content?: (seq: number) => string) =>
  Array.from({ length: to - from + 1 }, (_, i) => message(from + i, content?.(from + i)));
const tailOf = (ms: Message[]): ReadSession => ({
  session,
  history: null,
  newest: { lines: historyLines(ms), count: ms.length },
});

describe("authSnapshot from the newest messages read", () => {
  it("plans from them when they are exactly as many as the plan reads", () => {
    const tail = messages(11, 14);
    expect(authSnapshot(tailOf(tail), { newest: 4, chars: 1e6 })).toEqual({
      session,
      messages: tail,
      complete: false,
    });
  });

  it("not when they are one fewer and hold less than the character bound", () => {
    expect(authSnapshot(tailOf(messages(12, 14)), { newest: 4, chars: 1e6 })).toBeNull();
    expect(authSnapshot(tailOf(messages(12, 14)), { newest: 4 })).toBeNull();
  });

  it("plans from fewer when their content reaches the character bound exactly", () => {
    const tail = messages(13, 14, () => "x".repeat(50));
    expect(authSnapshot(tailOf(tail), { newest: 4, chars: 100 })?.messages).toEqual(tail);
    expect(authSnapshot(tailOf(tail), { newest: 4, chars: 101 })).toBeNull();
  });

  it("an empty tail never stands for a history", () => {
    expect(authSnapshot(tailOf([]), { newest: 4, chars: 1 })).toBeNull();
  });

  it("a plan that reads the whole history ignores the tail and uses the whole one when at hand", () => {
    const whole = messages(1, 6);
    const read: ReadSession = { ...tailOf(whole.slice(-4)), history: whole };
    expect(authSnapshot(read, {})).toEqual({ session, messages: whole, complete: true });
    expect(authSnapshot({ ...read, history: null }, {})).toBeNull();
  });

  it("from the cache's text, parses the messages only when asked and keeps the text", () => {
    const whole = messages(1, 6);
    let parsed = 0;
    const read: ReadSession = {
      session,
      get history() {
        parsed++;
        return whole;
      },
      historyText: historyText(whole),
    };
    const snap = authSnapshot(read, { newest: 4 });
    expect(snap).toMatchObject({ complete: true, historyText: historyText(whole) });
    expect(parsed).toBe(0);
    expect(snap?.messages).toEqual(whole);
  });
});

describe("authSnapshot from an entry an older release wrote (compact JSON, not line form)", () => {
  it("plans from the parsed messages, never cuts lines out of that text", () => {
    const whole = messages(1, 6);
    const read: ReadSession = { session, history: whole, historyText: JSON.stringify(whole) };
    const snap = authSnapshot(read, { newest: 2 });
    expect(snap).toEqual({ session, messages: whole, complete: true });
    expect(snap && newestMessages(snap, 2)).toEqual(whole.slice(-2));
  });
});

describe("newestMessages", () => {
  it.each([1, 4, 6, 9])("gives the same %i newest from the cache's text as from parsed messages", (n) => {
    const whole = messages(1, 6);
    const fromText = newestMessages(
      { session, messages: [], complete: true, historyText: historyText(whole) },
      n,
    );
    const fromRows = newestMessages({ session, messages: whole, complete: true }, n);
    expect(fromText).toEqual(whole.slice(-n));
    expect(fromRows).toEqual(whole.slice(-n));
  });
});

describe("headBytesFor", () => {
  it("sizes a larger read of the start from the lines already read, with a quarter to spare", () => {
    const lines = historyLines(messages(1, 10));
    const perLine = Buffer.byteLength(lines) / 10;
    expect(headBytesFor({ lines, count: 10 }, 19)).toBe(Math.ceil(20 * perLine * 1.25) + 64);
  });
});
