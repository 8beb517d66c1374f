import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { configSchema, parseConfig } from "../../layers/chat/config.ts";

const doc = readFileSync(new URL("../../docs/configuration.md", import.meta.url), "utf8");

/** `| \`NAME\` | default | what |` rows: name → the default cell's first code span (or its text). */
function documentedDefaults(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const m of doc.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|/gm)) {
    const [, name, cell] = m as unknown as [string, string, string];
    expect(rows.has(name), `${name} listed twice`).toBe(false);
    rows.set(name, (/`([^`]*)`/.exec(cell)?.[1] ?? cell).trim());
  }
  return rows;
}

/** How the table writes a parsed default: `—` for unset or an empty list. */
function asWritten(value: unknown): string {
  if (value === undefined || (Array.isArray(value) && value.length === 0)) return "—";
  return String(value);
}

describe("docs/configuration.md", () => {
  it("lists every setting config.ts reads, and no other, with the default it parses to", () => {
    const documented = documentedDefaults();
    const names = Object.keys(configSchema.shape);
    expect([...documented.keys()].sort()).toEqual([...names].sort());
    const defaults = parseConfig({}) as unknown as Record<string, unknown>;
    for (const name of names) expect(documented.get(name), name).toBe(asWritten(defaults[name]));
  });
});
