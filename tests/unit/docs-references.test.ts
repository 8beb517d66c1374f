import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../infra/paths.ts";

/**
 * What the documents point a reader at must be there: every file path they cite in code spans, and every test
 * docs/reliability.md quotes by name in the file it names (a renamed or moved test left a `Test:` reference to
 * nothing).
 */
const DOCS = [
  "README.md",
  "local/README.md",
  ...readdirSync(join(REPO_ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];
const read = (file: string) => readFileSync(join(REPO_ROOT, file), "utf8");
const ROOTS = /^(?:tests|functions|layers|local|infra|scripts|bench|docs|\.ci)\//;
// what a run writes (bench/results/profiles/ …): named in the documents, absent from a clean clone
const IGNORED = read(".gitignore")
  .split("\n")
  .map((l) => l.trim().replace(/^\//, ""))
  .filter((l) => l && !l.startsWith("#"));

describe("the documents' references", () => {
  it.each(DOCS)("%s cites only files that exist", (doc) => {
    const missing = [...read(doc).matchAll(/`([^`\s]+)`/g)]
      .map((m) => (m[1] ?? "").replace(/[.,:;)]+$/, "").replace(/:\d+$/, ""))
      .filter((p) => ROOTS.test(p) && !/[*<>{}]/.test(p) && !IGNORED.some((g) => p.startsWith(g)))
      .filter((p) => !existsSync(join(REPO_ROOT, p)));
    expect([...new Set(missing)]).toEqual([]);
  });

  it("docs/reliability.md quotes only tests its cited files hold", () => {
    const text = read("docs/reliability.md");
    const flat = (s: string) => s.replace(/\s+/g, " ");
    const missing: string[] = [];
    for (const m of text.matchAll(/`(tests\/[^`]+\.test\.ts)`\s*\(\s*"([^"]+)"/g)) {
      const [, file = "", quoted = ""] = m;
      // a quote may end at a colon or a parenthesis that adds what the test showed
      const name = flat(quoted).split(/:|\(/)[0]?.trim() ?? "";
      if (!existsSync(join(REPO_ROOT, file)) || !flat(read(file)).includes(name))
        missing.push(`${file}: "${name}"`);
    }
    expect(missing).toEqual([]);
  });
});
