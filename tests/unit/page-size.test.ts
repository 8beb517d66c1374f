import { describe, expect, it } from "vitest";
import { jsonTextBound, PAGE_MAX_BYTES, pageLength, utf8Bytes } from "../../layers/chat/chat/page-size.ts";

/** Items that are their own JSON size in bytes; `slack` added to the estimate (an upper bound, as callers pass). */
const lengthOf = (sizes: number[], first: number, limit: number, slack = 0) =>
  pageLength(
    sizes,
    first,
    limit,
    (n) => n + slack,
    (n) => n,
  );

describe("pageLength", () => {
  it("takes up to limit items from first when they fit", () => {
    expect(lengthOf([10, 10, 10, 10], 1, 2)).toBe(2);
    expect(lengthOf([10, 10, 10, 10], 1, 50)).toBe(3);
  });

  it("counts the comma after each item: items filling PAGE_MAX_BYTES without their commas do not fit", () => {
    const half = PAGE_MAX_BYTES / 2;
    expect(lengthOf([half, half], 0, 10)).toBe(1);
    expect(lengthOf([half, half], 0, 10, 5)).toBe(1);
  });

  it("takes items whose JSON and commas come to PAGE_MAX_BYTES exactly, once the estimate is over", () => {
    const half = PAGE_MAX_BYTES / 2 - 1; // with its comma, half the bound
    expect(lengthOf([half, half, 1], 0, 10, 10)).toBe(2);
  });

  it("always holds one item, however large", () => {
    expect(lengthOf([PAGE_MAX_BYTES * 2, 1], 0, 10, 1)).toBe(1);
    expect(lengthOf([1, PAGE_MAX_BYTES * 2, 1], 1, 10, 1)).toBe(1);
  });
});

describe("jsonTextBound", () => {
  it("is at least a JSON text's UTF-8 bytes, whatever its characters", () => {
    for (const s of ["ascii", "é", "€uro", "中文字符", "😀", '"\\u0000"'])
      expect(jsonTextBound(s), s).toBeGreaterThanOrEqual(utf8Bytes(s));
  });
});
