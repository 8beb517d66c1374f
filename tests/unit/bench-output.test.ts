import { describe, expect, it } from "vitest";
import { outputDirs } from "../../bench/lib/report.ts";

describe("where a bench run writes", () => {
  it("a full run: its results file, docs/performance.md and the chart", () => {
    expect(outputDirs({ repoRoot: "/repo", partial: false })).toEqual({
      results: "/repo/bench/results",
      docs: "/repo/docs",
    });
  });

  it("a partial run (--only) leaves the document and the chart of the last full run as they are", () => {
    // its generated block would replace every figure and target of the other benchmarks with nothing
    expect(outputDirs({ repoRoot: "/repo", partial: true })).toEqual({
      results: "/repo/bench/results",
      docs: undefined,
    });
  });

  it("--out takes everything, partial or not", () => {
    expect(outputDirs({ repoRoot: "/repo", out: "/tmp/x", partial: true })).toEqual({
      results: "/tmp/x",
      docs: "/tmp/x",
    });
  });
});
