import { describe, expect, it } from "vitest";
import { pooledRandomBytes } from "../../layers/chat/random.ts";

describe("pooledRandomBytes", () => {
  it("returns the asked length, never the same bytes twice, across many pool refills", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const b = pooledRandomBytes(12);
      expect(b).toHaveLength(12);
      seen.add(b.toString("hex"));
    }
    expect(seen.size).toBe(20_000);
  });

  it("hands out buffers of their own: changing one changes no other", () => {
    const a = pooledRandomBytes(16);
    const b = pooledRandomBytes(16);
    const bBefore = Buffer.from(b);
    a.fill(0);
    expect(b.equals(bBefore)).toBe(true);
    expect(a.buffer === b.buffer && a.byteOffset === b.byteOffset).toBe(false);
    expect(pooledRandomBytes(600)).toHaveLength(600); // larger than a pool cut: straight from the CSPRNG
  });

  it("is not all zeros and spreads over byte values", () => {
    const counts = new Array(256).fill(0);
    for (let i = 0; i < 2000; i++) for (const byte of pooledRandomBytes(16)) counts[byte]++;
    // 32,000 bytes over 256 values: every value appears (expected 125 each)
    expect(Math.min(...counts)).toBeGreaterThan(50);
    // and none piles up: cuts that overlapped would hand out the zeros a cut leaves behind (over 10 sigma here)
    expect(Math.max(...counts)).toBeLessThan(250);
  });
});
