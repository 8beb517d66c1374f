import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRelativeSourceMaps } from "../../infra/source-map-paths.ts";

/**
 * infra/source-map-paths.ts on its own, with a map written by hand: the synth in reproducible-assets.test.ts meets
 * only the sources its checkout has (a node_modules reached through a symlink only in a checkout that has one).
 */
describe("source maps named from the repository", () => {
  const work = mkdtempSync(join(tmpdir(), "source-maps-"));
  const repo = join(work, "repo");
  // CDK's staging folder for `cdk synth -o DIR` outside the checkout
  const out = join(work, "out", "asset.1");
  mkdirSync(out, { recursive: true });
  const fromOut = (path: string) => relative(out, path);
  const sources = [
    fromOut(join(repo, "functions/openapi.ts")),
    fromOut(join(repo, "node_modules/pg/lib/index.js")),
    // a linked install: node_modules is a symlink to another folder, which esbuild names by its real path
    fromOut(join(work, "shared-install/node_modules/ioredis/built/index.js")),
    fromOut(join(work, "elsewhere/file.ts")),
    "<stdin>",
    "<define:process.env.NODE_ENV>",
  ];

  it("names each source relative to the repository, a linked package by its node_modules path", () => {
    writeFileSync(join(out, "index.js.map"), JSON.stringify({ version: 3, sources, mappings: "" }));
    writeFileSync(join(out, "index.js"), "not a map");
    repoRelativeSourceMaps(repo, out);
    const map = JSON.parse(readFileSync(join(out, "index.js.map"), "utf8")) as { sources: string[] };
    expect(map.sources).toEqual([
      "functions/openapi.ts",
      "node_modules/pg/lib/index.js",
      "node_modules/ioredis/built/index.js",
      // outside the repository and no package: left as esbuild named it
      "../elsewhere/file.ts",
      // esbuild's pseudo-files name no path
      "<stdin>",
      "<define:process.env.NODE_ENV>",
    ]);
    expect(readFileSync(join(out, "index.js"), "utf8")).toBe("not a map");
  });
});
