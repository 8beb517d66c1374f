import { describe, expect, it } from "vitest";
import { applyPrebundlePatches, PREBUNDLE_PATCHES } from "../../infra/prebundle-patches.ts";

describe("patches to prebundled layer packages", () => {
  const patch = { before: "loop(table);\n", insert: "prepare(table); " };

  it("inserts each patch right before its text", () => {
    expect(applyPrebundlePatches("pkg", "a();\nloop(table);\nb();\n", [patch])).toBe(
      "a();\nprepare(table); loop(table);\nb();\n",
    );
  });

  it("refuses a bundle where the text is missing or found twice, naming the package", () => {
    expect(() => applyPrebundlePatches("pkg", "a();\n", [patch])).toThrow(/pkg: text not found/);
    expect(() => applyPrebundlePatches("pkg", "loop(table);\nloop(table);\n", [patch])).toThrow(
      /pkg: text found more than once/,
    );
  });

  it("leaves packages without patches unchanged", () => {
    expect(PREBUNDLE_PATCHES.pg).toBeUndefined();
    expect(applyPrebundlePatches("pg", "loop(table);\n")).toBe("loop(table);\n");
  });
});
