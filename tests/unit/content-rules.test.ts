import { describe, expect, it } from "vitest";
import { safeParse } from "zod/mini";
import { editMessageBody, postMessageBody } from "../../functions/http/schemas.ts";
import { assertValidContent, assertValidUserId, isBlank } from "../../layers/chat/chat/content-rules.ts";
import { ChatError } from "../../layers/chat/chat/errors.ts";

const sid = "7b0c4a4e-1f7e-4c65-9a3e-2b1f3c4d5e6f";

/** The field errors assertValidContent answers, or null when it takes the content. */
function refusal(content: string, max = 8000) {
  try {
    assertValidContent(content, max);
    return null;
  } catch (err) {
    if (!(err instanceof ChatError)) throw err;
    return { detail: err.message, errors: err.errors };
  }
}

describe("message content rules", () => {
  it("blank: nothing but white space and default-ignorable code points", () => {
    for (const s of ["", " ", "\n\t", "\u00a0", "\u3000", "\u200b", "\u200c", "\u200d", "\u2060", "\u3164"])
      expect(isBlank(s), JSON.stringify(s)).toBe(true);
    for (const s of [
      "\ufeff",
      "\u00ad",
      "\u034f",
      "\u180e",
      "\u115f",
      "\u202e",
      "\u{e0001}",
      " \u200b\u2060\n",
    ])
      expect(isBlank(s), JSON.stringify(s)).toBe(true);
    for (const s of ["a", "\u200bhi", ".", "😀", "👨‍👩‍👧", "\u0301", "\u202eabc"])
      expect(isBlank(s), JSON.stringify(s)).toBe(false);
  });

  it("refuses invisible-only content with the same error as white space alone", () => {
    const blank = refusal("   ");
    expect(blank?.errors).toEqual([{ path: "content", message: expect.stringMatching(/must not be empty/) }]);
    for (const s of ["\u200b", "\u2060", "\u3164", "\ufeff", "\u200b \u200d"])
      expect(refusal(s)).toEqual(blank);
    expect(refusal("\u200bhi")).toBeNull();
  });

  it("states the limit it applies, in code points, however long the content", () => {
    const over = {
      detail: "content must be at most 8000 characters",
      errors: [{ path: "content", message: "must be at most 8000 characters" }],
    };
    for (const s of ["a".repeat(8001), "😀".repeat(8001), "a".repeat(32_001), "a".repeat(100_000)])
      expect(refusal(s)).toEqual(over);
    expect(refusal("😀".repeat(8000))).toBeNull();
  });

  it("refuses content that is not a string", () => {
    for (const content of [42, null, undefined, ["hi"]])
      expect(() => assertValidContent(content, 8000)).toThrow(
        expect.objectContaining({ errors: [{ path: "content", message: "must be a string" }] }),
      );
  });

  it("the request schemas leave length and blankness to these rules: no message of zod's own, in UTF-16 units", () => {
    for (const content of ["a".repeat(32_001), "", "\u200b"]) {
      expect(safeParse(postMessageBody, { session_id: sid, content }).success).toBe(true);
      expect(safeParse(editMessageBody, { session_id: sid, message_id: sid, content }).success).toBe(true);
    }
  });
});

describe("user_id rules", () => {
  /** The field errors assertValidUserId answers, or null when it takes the id. */
  function userIdRefusal(userId: string | null | undefined) {
    try {
      assertValidUserId(userId);
      return null;
    } catch (err) {
      if (!(err instanceof ChatError)) throw err;
      return err.errors;
    }
  }

  it("takes none as null", () => {
    expect(assertValidUserId(undefined)).toBeNull();
    expect(assertValidUserId(null)).toBeNull();
  });

  it("takes 1 to 256 characters, counted in code points, and refuses the empty string and 257", () => {
    const length = [{ path: "user_id", message: "must be 1–256 characters" }];
    for (const ok of ["u", "a".repeat(256), "😀".repeat(256)]) expect(assertValidUserId(ok)).toBe(ok);
    for (const bad of ["", "a".repeat(257), "😀".repeat(257)]) expect(userIdRefusal(bad)).toEqual(length);
  });

  it("refuses one Postgres cannot store", () => {
    expect(userIdRefusal("a\u0000b")).toEqual([
      { path: "user_id", message: "must not contain NUL characters" },
    ]);
    expect(userIdRefusal("\ud800")).toEqual([
      { path: "user_id", message: "must be valid Unicode (lone surrogate)" },
    ]);
  });
});
