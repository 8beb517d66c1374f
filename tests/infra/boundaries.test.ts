import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../infra/paths.ts";

function* files(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

const importsOf = (file: string) =>
  [...readFileSync(file, "utf8").matchAll(/(?:from\s*|import\s*\(\s*|import\s+)["']([^"']+)["']/g)].map(
    (m) => m[1] ?? "",
  );

describe("code boundaries", () => {
  it("the CDK app never imports runtime clients (only infra/handlers/ is Lambda code)", () => {
    const offenders: string[] = [];
    for (const file of files(join(REPO_ROOT, "infra"))) {
      if (file.includes("/infra/handlers/")) continue;
      for (const spec of importsOf(file))
        if (
          /^(pg|ioredis|kafkajs|node-pg-migrate)(\/|$)|^@aws-sdk\//.test(spec) ||
          /^#chat\/(db|cache|events)\//.test(spec)
        )
          offenders.push(`${relative(REPO_ROOT, file)} → ${spec}`);
    }
    expect(offenders).toEqual([]);
  });

  it("runtime code never imports aws-cdk-lib, constructs or cdk-nag", () => {
    const offenders: string[] = [];
    for (const dir of ["functions", "layers", "infra/handlers"])
      for (const file of files(join(REPO_ROOT, dir)))
        for (const spec of importsOf(file))
          if (/^(aws-cdk-lib|constructs|cdk-nag|aws-cdk)(\/|$)/.test(spec))
            offenders.push(`${relative(REPO_ROOT, file)} → ${spec}`);
    expect(offenders).toEqual([]);
  });
});
