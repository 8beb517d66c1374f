import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { pageOf } from "../../layers/chat/chat/history-rules.ts";
import {
  historyLines,
  historyText,
  isLineForm,
  lastMessagesFromText,
  pageJsonFromNewest,
  pageJsonFromOldest,
  pageJsonFromText,
  parseHistoryText,
} from "../../layers/chat/chat/history-text.ts";
import { PAGE_MAX_BYTES } from "../../layers/chat/chat/page-size.ts";
import type { Message } from "../../layers/chat/chat/types.ts";

// content that tries to look like the format: separators, keys, quotes, line breaks, unicode
const nasty = fc.oneof(
  fc.string(),
  fc.constantFrom(",\n", '"seq":1', '\\"seq\\":2', '},{"seq":3}', "\n]", "[\n", "\u2028", "😀", '"', "\\"),
  fc.string({ unit: "grapheme" }),
);

const history = fc
  .array(
    fc.record({
      gap: fc.integer({ min: 1, max: 3 }),
      role: fc.constantFrom("user" as const, "assistant" as const),
      content: nasty,
      version: fc.integer({ min: 1, max: 5 }),
      edited: fc.boolean(),
    }),
    { maxLength: 40 },
  )
  .map((items) => {
    let seq = 0;
    return items.map((it, i): Message => {
      seq += it.gap;
      return {
        message_id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
        session_id: "7b0c4a4e-1f7e-4c65-9a3e-2b1f3c4d5e6f",
        seq,
        role: it.role,
        content: it.content,
        version: it.version,
        created_at: "2026-11-26T09:00:00.000Z",
        edited_at: it.edited ? "2026-11-26T09:01:00.000Z" : null,
        reply_to: null,
      };
    });
  });

describe("history cache text", () => {
  it("is JSON that parses back to the same history", () => {
    fc.assert(
      fc.property(history, (h) => {
        const text = historyText(h);
        expect(isLineForm(text)).toBe(true);
        expect(parseHistoryText(text)).toEqual(h);
      }),
    );
  });

  it("a page cut from the text is exactly JSON.stringify(pageOf(history))", () => {
    fc.assert(
      fc.property(
        history,
        fc.integer({ min: 0, max: 130 }),
        fc.integer({ min: 1, max: 60 }),
        (h, afterSeq, limit) => {
          expect(pageJsonFromText(historyText(h), afterSeq, limit)).toBe(
            JSON.stringify(pageOf(h, afterSeq, limit)),
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it("a page from either end of the history is the page from all of it, or null when that end may not hold it", () => {
    let answered = 0;
    fc.assert(
      fc.property(
        history,
        fc.integer({ min: 0, max: 45 }),
        fc.nat(),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 1, max: 60 }),
        (h, n, pick, back, limit) => {
          // near a message's seq, where an off-by-one at either end would show
          const afterSeq = Math.max(0, (h[pick % Math.max(1, h.length)]?.seq ?? 0) - back);
          const whole = JSON.stringify(pageOf(h, afterSeq, limit));
          const newest = h.slice(Math.max(0, h.length - n));
          const oldest = h.slice(0, n);
          const fromNewest = pageJsonFromNewest(historyLines(newest), afterSeq, limit);
          const fromOldest = pageJsonFromOldest(historyLines(oldest), afterSeq, limit);
          if (fromNewest !== null) expect(fromNewest).toBe(whole);
          if (fromOldest !== null) expect(fromOldest).toBe(whole);
          // an end that holds the whole page (and what tells whether more follow) answers: the newest lines when
          // their oldest follows afterSeq at once or precedes it, the oldest when a line follows the page
          const oldestOfNewest = newest[0]?.seq;
          if (oldestOfNewest !== undefined && oldestOfNewest <= afterSeq + 1) expect(fromNewest).toBe(whole);
          const from = h.findIndex((m) => m.seq > afterSeq);
          if (from >= 0 && from + limit < oldest.length) expect(fromOldest).toBe(whole);
          if (fromNewest !== null || fromOldest !== null) answered++;
        },
      ),
      { numRuns: 800 },
    );
    expect(answered).toBeGreaterThan(100);
  });

  it("the newest n messages read from the text are the history's last n", () => {
    fc.assert(
      fc.property(history, fc.integer({ min: 0, max: 45 }), (h, n) => {
        expect(lastMessagesFromText(historyText(h), n)).toEqual(n === 0 ? [] : h.slice(-n));
      }),
      { numRuns: 500 },
    );
  });

  it("an entry in the older compact form is not taken for the line form", () => {
    expect(isLineForm(JSON.stringify([{ seq: 1 }]))).toBe(false);
    expect(isLineForm(historyText([]))).toBe(true);
    expect(pageJsonFromText(historyText([]), 0, 50)).toBe('{"messages":[],"next_after_seq":null}');
  });

  it("a page of long messages stops at PAGE_MAX_BYTES, the same from the text, either end and the messages", () => {
    // 300,000 '"' per message: 600 KB of JSON each, so a page holds 4 of them and says where to go on
    const big = (seq: number, content: string): Message => ({
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
    const h = Array.from({ length: 12 }, (_, i) => big(i + 1, `${i}${'"'.repeat(300_000)}`));
    const text = historyText(h);
    let afterSeq = 0;
    const seen: number[] = [];
    while (true) {
      const page = pageOf(h, afterSeq, 200);
      const json = JSON.stringify(page);
      expect(pageJsonFromText(text, afterSeq, 200)).toBe(json);
      expect(pageJsonFromNewest(historyLines(h.slice(2)), afterSeq + 2, 200)).toBe(
        JSON.stringify(pageOf(h, afterSeq + 2, 200)),
      );
      expect(Buffer.byteLength(json)).toBeLessThanOrEqual(PAGE_MAX_BYTES + 64);
      seen.push(...page.messages.map((m) => m.seq));
      if (page.next_after_seq === null) break;
      expect(page.messages).toHaveLength(4);
      afterSeq = page.next_after_seq;
    }
    expect(seen).toEqual(h.map((m) => m.seq));
    // a message larger than the bound on its own still makes a page, of one
    const huge = [big(1, '"'.repeat(1_600_000)), big(2, "next")];
    expect(pageOf(huge, 0, 50)).toEqual({ messages: [huge[0]], next_after_seq: 1 });
    expect(pageJsonFromText(historyText(huge), 0, 50)).toBe(JSON.stringify(pageOf(huge, 0, 50)));
  });
});
