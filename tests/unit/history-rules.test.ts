import { describe, expect, it } from "vitest";
import { applyToHistory, pageOf } from "../../layers/chat/chat/history-rules.ts";
import { historyText, pageJsonFromText } from "../../layers/chat/chat/history-text.ts";
import { PAGE_MAX_BYTES } from "../../layers/chat/chat/page-size.ts";
import type { Message } from "../../layers/chat/chat/types.ts";

const message = (seq: number, content = `m${seq}`): Message => ({
  message_id: `00000000-0000-4000-8000-${String(seq).padStart(12, "0")}`,
  session_id: "7b0c4a4e-1f7e-4c65-9a3e-2b1f3c4d5e6f",
  seq,
  role: seq % 2 ? "user" : "assistant",
  content,
  version: 1,
  created_at: "2026-11-26T09:00:00.000Z",
  edited_at: null,
  reply_to: null,
});

describe("applyToHistory", () => {
  it("edits in place, drops the deleted message and appends the inserts after the rest", () => {
    const before = [message(1), message(2), message(3)];
    const edited = { ...message(1, "edited"), version: 2 };
    const after = applyToHistory(before, {
      edits: [edited],
      deleteMessageId: message(2).message_id,
      inserts: [message(4)],
    });
    // the cache is written from this: it must stay in seq order
    expect(after.map((m) => [m.seq, m.content])).toEqual([
      [1, "edited"],
      [3, "m3"],
      [4, "m4"],
    ]);
  });
});

describe("pageOf", () => {
  it("stays within PAGE_MAX_BYTES for control characters, 6 bytes of JSON each", () => {
    // 300,000 U+0001 are 1.8 MB of JSON: two of them do not fit one page
    const h = [message(1, "\u0001".repeat(300_000)), message(2, "\u0001".repeat(300_000))];
    const page = pageOf(h, 0, 50);
    expect(page.messages.map((m) => m.seq)).toEqual([1]);
    expect(page.next_after_seq).toBe(1);
    expect(Buffer.byteLength(JSON.stringify(page))).toBeLessThanOrEqual(PAGE_MAX_BYTES + 64);
  });
});

describe("a page cut from the cached text, at large seqs", () => {
  it("reads seqs of seven digits (a session may hold up to 1,000,000 messages)", () => {
    const h = [999_998, 999_999, 1_000_000, 1_000_001].map((seq) => message(seq));
    for (const afterSeq of [0, 999_998, 1_000_000])
      expect(pageJsonFromText(historyText(h), afterSeq, 2)).toBe(JSON.stringify(pageOf(h, afterSeq, 2)));
  });
});
