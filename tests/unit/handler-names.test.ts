import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { functions } from "../../functions/manifest.ts";

/**
 * Each HTTP handler names itself in `httpHandler({ name })` (its log lines, metrics and the rate limiter's exemptions
 * use it), a second copy of its manifest name: a handler copied to start a new endpoint must not keep the old one.
 */
describe("every HTTP function's handler names itself as the manifest does", () => {
  const http = functions.filter((f) => f.route || f.defaultRoute);
  it.each(http.map((f) => [f.name, f.handler]))("%s", (name, handler) => {
    const source = readFileSync(new URL(`../../functions/${handler}.ts`, import.meta.url), "utf8");
    const named = [...source.matchAll(/httpHandler\(\s*(?:\/\/[^\n]*\n\s*)*\{\s*name:\s*"([^"]+)"/g)].map(
      (m) => m[1],
    );
    expect(named).toEqual([name]);
  });
  it("covers every routed function", () => {
    expect(http.length).toBeGreaterThanOrEqual(10);
  });
});
