import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../infra/paths.ts";

/**
 * docs/deploy.md (What a deploy changes): a synth from another folder gives what one in the checkout gives. The CLI
 * reads cdk.json from its working directory only and hands the app its context in CDK_CONTEXT_JSON, so this runs
 * the app as the CLI does, once with the checkout's cdk.json context and once from a folder without one.
 */
const cdkJson = JSON.parse(readFileSync(join(REPO_ROOT, "cdk.json"), "utf8")) as {
  context: Record<string, unknown>;
};

function synthAsCli(cwd: string, context: Record<string, unknown>): Record<string, unknown> {
  const outdir = mkdtempSync(join(tmpdir(), "app-context-"));
  const run = spawnSync(process.execPath, [join(REPO_ROOT, "infra/app.ts")], {
    cwd,
    env: { ...process.env, CDK_OUTDIR: outdir, CDK_CONTEXT_JSON: JSON.stringify(context) },
    encoding: "utf8",
  });
  expect(run.stderr).not.toMatch(/Error/);
  expect(run.status).toBe(0);
  return JSON.parse(readFileSync(join(outdir, "ChatBackend.template.json"), "utf8"));
}

describe("the app synthesized from another folder", () => {
  // no esbuild (seconds, not minutes); a command-line setting on top, as `-c` gives it
  const cli = { "aws:cdk:bundling-stacks": [], logRetentionDays: 7 };

  it("takes the repository's cdk.json context under the command line's: the same template as in the checkout", () => {
    const checkout = synthAsCli(REPO_ROOT, { ...cdkJson.context, ...cli });
    const elsewhere = synthAsCli(mkdtempSync(join(tmpdir(), "app-cwd-")), cli);
    expect(JSON.stringify(checkout)).toContain('"RetentionInDays":7');
    expect(elsewhere).toEqual(checkout);
  });
});
