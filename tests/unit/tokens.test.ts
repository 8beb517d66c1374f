import * as crypto from "node:crypto";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";

// tokenMatches must decide with crypto.timingSafeEqual; the spy lets a test see (and overrule) that call.
vi.mock("node:crypto", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:crypto")>();
  return { ...real, timingSafeEqual: vi.fn(real.timingSafeEqual) };
});

const { hashToken, newSessionToken, tokenMatches } = await import("../../layers/chat/chat/tokens.ts");
const timingSafeEqual = vi.mocked(crypto.timingSafeEqual);
afterEach(() => {
  timingSafeEqual.mockClear();
});

describe("newSessionToken", () => {
  it("is 256 random bits as 43 base64url characters", () => {
    for (let i = 0; i < 1000; i++) {
      const t = newSessionToken();
      expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const bytes = Buffer.from(t, "base64url");
      expect(bytes).toHaveLength(32);
      expect(bytes.toString("base64url")).toBe(t); // canonical: no padding, no stray bits
    }
  });

  it("never repeats and every bit varies (a fixed or low-entropy source would fail)", () => {
    const n = 4000;
    const seen = new Set<string>();
    const ones = new Array<number>(256).fill(0);
    for (let i = 0; i < n; i++) {
      const t = newSessionToken();
      seen.add(t);
      const bytes = Buffer.from(t, "base64url");
      for (let bit = 0; bit < 256; bit++)
        ones[bit] = (ones[bit] as number) + (((bytes[bit >> 3] as number) >> (7 - (bit & 7))) & 1);
    }
    expect(seen.size).toBe(n);
    // each bit is set about half the time: n/2 ± 6σ (σ = √n / 2 ≈ 32)
    for (const count of ones) {
      expect(count).toBeGreaterThan(n / 2 - 190);
      expect(count).toBeLessThan(n / 2 + 190);
    }
  });
});

describe("hashToken", () => {
  it("is the SHA-256 of the token, in hex, and does not contain it", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.constant(newSessionToken())), (t) => {
        const h = hashToken(t);
        expect(h).toMatch(/^[0-9a-f]{64}$/);
        expect(h).toBe(crypto.createHash("sha256").update(t, "utf8").digest("hex"));
        if (t.length >= 8) expect(h).not.toContain(t);
      }),
    );
  });
});

describe("tokenMatches", () => {
  it("accepts the token whose hash is stored, and no other (property)", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 64 }),
        fc.string({ maxLength: 64 }),
        (token, other) => {
          const stored = hashToken(token);
          expect(tokenMatches(token, stored)).toBe(true);
          expect(tokenMatches(other, stored)).toBe(other === token);
        },
      ),
    );
  });

  it("rejects a token one character off, longer, shorter, or differently cased", () => {
    const token = newSessionToken();
    const stored = hashToken(token);
    const flip = (c: string) => (c === "A" ? "B" : "A");
    for (let i = 0; i < token.length; i++) {
      expect(tokenMatches(token.slice(0, i) + flip(token[i] as string) + token.slice(i + 1), stored)).toBe(
        false,
      );
    }
    expect(tokenMatches(`${token}A`, stored)).toBe(false);
    expect(tokenMatches(token.slice(0, -1), stored)).toBe(false);
    expect(tokenMatches("", stored)).toBe(false);
    if (token !== token.toUpperCase()) expect(tokenMatches(token.toUpperCase(), stored)).toBe(false);
  });

  it("compares with crypto.timingSafeEqual on equal-length buffers, and its answer is the answer", () => {
    const token = newSessionToken();
    const stored = hashToken(token);
    expect(tokenMatches(token, stored)).toBe(true);
    expect(timingSafeEqual).toHaveBeenCalledTimes(1);
    const [a, b] = timingSafeEqual.mock.calls[0] as [Buffer, Buffer];
    expect(a.length).toBe(32);
    expect(b.length).toBe(32);

    // a wrong token is decided by timingSafeEqual too, not by an early string comparison
    timingSafeEqual.mockClear();
    expect(tokenMatches(newSessionToken(), stored)).toBe(false);
    expect(timingSafeEqual).toHaveBeenCalledTimes(1);

    // overrule it: the result follows, so nothing else (=== on strings) decides
    timingSafeEqual.mockReturnValueOnce(false);
    expect(tokenMatches(token, stored)).toBe(false);
    timingSafeEqual.mockReturnValueOnce(true);
    expect(tokenMatches(newSessionToken(), stored)).toBe(true);
  });

  it("never throws on a malformed stored hash; a presented token of any length is hashed to 32 bytes first", () => {
    const token = newSessionToken();
    for (const bad of [
      "",
      "zz",
      "abc",
      hashToken(token).slice(0, 63),
      hashToken(token).slice(0, 62),
      `${"0".repeat(66)}`,
    ]) {
      expect(tokenMatches(token, bad)).toBe(false);
    }
    fc.assert(
      fc.property(fc.string({ maxLength: 5000 }), fc.string({ maxLength: 100 }), (presented, stored) => {
        timingSafeEqual.mockClear();
        expect(typeof tokenMatches(presented, stored)).toBe("boolean");
        for (const [x, y] of timingSafeEqual.mock.calls as [Buffer, Buffer][]) {
          expect(x.length).toBe(32);
          expect(y.length).toBe(32);
        }
      }),
    );
  });
});
