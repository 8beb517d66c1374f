import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { App, Stack } from "aws-cdk-lib";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import { build, version as esbuildVersion } from "esbuild";
import { describe, expect, it, vi } from "vitest";
import { functions } from "#functions/manifest.ts";
import { bundlingFor, ChatFunction, type ChatFunctionDefaults } from "../../infra/chat-function.ts";
import { readContext } from "../../infra/context.ts";
import { DataPlane } from "../../infra/data-plane.ts";
import { closureHash, layerPackages } from "../../infra/layer-packages.ts";
import { Migrations } from "../../infra/migrations.ts";
import { FUNCTIONS_DIR, REPO_ROOT } from "../../infra/paths.ts";
import { PREBUNDLE_PATCHES } from "../../infra/prebundle-patches.ts";
import { EXTERNAL_CONTEXT, resourcesOf, synth } from "./synth.ts";

/**
 * What a deploy changes (docs/deploy.md, What a deploy changes): the same commit gives the same assets wherever it
 * is checked out and synthesized, and an edit changes the assets of the functions that run it, no others.
 */

const packages = layerPackages(REPO_ROOT);

/** Every file under `dir` (relative path → sha256), so two builds compare whole. */
function digest(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else out[relative(dir, path)] = createHash("sha256").update(readFileSync(path)).digest("hex");
    }
  };
  walk(dir);
  return out;
}

/** One HTTP function and the migrations handler (command hooks of its own), bundled for real into `outdir`. */
function synthAssets(outdir: string): Record<string, string> {
  const app = new App({ outdir, context: { ...EXTERNAL_CONTEXT, "aws:cdk:enable-asset-metadata": true } });
  const stack = new Stack(app, "Repro");
  const defaults: ChatFunctionDefaults = {
    layerMode: "layer",
    layerPackages: packages,
    logRetention: RetentionDays.ONE_DAY,
    environment: {},
  };
  new ChatFunction(stack, "Openapi", { entry: join(FUNCTIONS_DIR, "openapi.ts"), defaults });
  const dataPlane = new DataPlane(stack, "DataPlane", {
    ctx: readContext(app.node),
    topic: "chat-messages",
    logRetention: RetentionDays.ONE_DAY,
  });
  new Migrations(stack, "Migrations", { defaults, dataPlane, topic: "chat-messages", partitions: 1 });
  app.synth();
  const template = JSON.parse(readFileSync(join(outdir, "Repro.template.json"), "utf8"));
  const assets: Record<string, string> = {};
  for (const [id, r] of Object.entries(
    template.Resources as Record<string, { Type: string; Metadata?: Record<string, string> }>,
  )) {
    const path = r.Metadata?.["aws:asset:path"];
    if (r.Type === "AWS::Lambda::Function" && path) assets[id] = path;
  }
  return assets;
}

describe("function assets do not depend on where the app is synthesized", () => {
  // cdk.out inside the checkout (`npm run synth`), or anywhere else (`cdk synth -o DIR`, `--app` from another
  // folder: infra/paths.ts resolves every path from the repository for that): the same commit, the same hashes.
  const near = mkdtempSync(join(tmpdir(), "repro-out-"));
  const far = join(mkdtempSync(join(tmpdir(), "repro-out-")), "one", "level", "deeper");
  mkdirSync(far, { recursive: true });
  let a: Record<string, string> = {};
  let b: Record<string, string> = {};

  it("gives every function the same asset hash from two output folders", () => {
    a = synthAssets(near);
    b = synthAssets(far);
    // openapi, the migrations handler and the Provider framework's function
    expect(Object.keys(a)).toHaveLength(3);
    expect(b).toEqual(a);
  });

  it("names each source in the source maps relative to the repository, never by the build machine's path", () => {
    const ours = Object.entries(a).filter(([id]) => /^(Openapi|MigrationsHandler)/.test(id));
    expect(ours).toHaveLength(2);
    for (const [, asset] of ours) {
      const map = JSON.parse(readFileSync(join(near, asset, "index.js.map"), "utf8")) as {
        sources: string[];
      };
      expect(map.sources.length).toBeGreaterThan(0);
      for (const source of map.sources) {
        expect(source).not.toMatch(/^(\/|\.\.)/);
        expect(existsSync(join(REPO_ROOT, source))).toBe(true); // a file of the checkout
      }
      expect(
        map.sources.filter((s) => /^(functions\/openapi|infra\/handlers\/migrate-on-deploy)\.ts$/.test(s)),
      ).toHaveLength(1);
    }
  });

  it("keeps a function's own bundling hooks: the migrations handler's asset ships the SQL migrations", () => {
    // ChatFunction adds its source-map hook after the caller's, not instead of them
    const [, asset] = Object.entries(a).find(([id]) => id.startsWith("MigrationsHandler")) ?? [];
    expect(asset).toBeDefined();
    const sql = (dir: string) => readdirSync(dir).filter((f) => f.endsWith(".sql"));
    const shipped = sql(join(near, asset ?? "", "migrations"));
    expect(shipped.length).toBeGreaterThan(0);
    expect(shipped).toEqual(sql(join(REPO_ROOT, "layers/chat/db/migrations")));
  });
});

describe("the dependencies layer", () => {
  /** writeLayer in a node process of its own, started in `cwd`. */
  const writeLayerFrom = (cwd: string, outDir: string) => {
    const url = pathToFileURL(join(REPO_ROOT, "infra/layer-packages.ts")).href;
    const run = spawnSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const l = await import(${JSON.stringify(url)});
         l.writeLayer(${JSON.stringify(REPO_ROOT)}, l.layerPackages(${JSON.stringify(REPO_ROOT)}), ${JSON.stringify(outDir)});`,
      ],
      { cwd, encoding: "utf8" },
    );
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    return digest(outDir);
  };

  it("has the same files whatever folder the synth runs from (the hash says it is the same layer)", () => {
    const work = mkdtempSync(join(tmpdir(), "repro-layer-"));
    const elsewhere = join(work, "cwd", "deeper");
    mkdirSync(elsewhere, { recursive: true });
    const fromRoot = writeLayerFrom(REPO_ROOT, join(work, "a"));
    const fromElsewhere = writeLayerFrom(elsewhere, join(work, "b"));
    expect(Object.keys(fromRoot)).toContain("nodejs/node_modules/pg/index.js");
    expect(fromElsewhere).toEqual(fromRoot);
  });

  it("hashes package versions by their path in the checkout, not by where the checkout is", () => {
    const checkout = (dir: string) => {
      mkdirSync(join(dir, "node_modules/pg"), { recursive: true });
      writeFileSync(
        join(dir, "node_modules/pg/package.json"),
        JSON.stringify({ name: "pg", version: "8.0.0" }),
      );
      return closureHash(dir, ["node_modules/pg"]);
    };
    const work = mkdtempSync(join(tmpdir(), "repro-hash-"));
    expect(checkout(join(work, "a"))).toBe(checkout(join(work, "elsewhere", "b")));
  });

  it("gets a new hash when esbuild, which writes the ioredis and pg bundles, changes version", () => {
    // the same package versions: without this, an esbuild upgrade ships new bundles under the old layer's hash,
    // which CDK takes for the layer deployed stacks already run, so they keep the old build and new stacks get
    // the new one
    const root = mkdtempSync(join(tmpdir(), "repro-hash-"));
    mkdirSync(join(root, "node_modules/pg"), { recursive: true });
    writeFileSync(
      join(root, "node_modules/pg/package.json"),
      JSON.stringify({ name: "pg", version: "8.0.0" }),
    );
    const now = closureHash(root, ["node_modules/pg"]);
    expect(closureHash(root, ["node_modules/pg"], esbuildVersion)).toBe(now);
    expect(closureHash(root, ["node_modules/pg"], "0.99.0")).not.toBe(now);
  });

  it("gets a new hash when a prebundle patch changes (infra/prebundle-patches.ts)", async () => {
    // the same package and esbuild versions: an edited patch writes another ioredis bundle, which must not ship
    // under the hash of the layer deployed stacks already run
    const root = mkdtempSync(join(tmpdir(), "repro-hash-"));
    mkdirSync(join(root, "node_modules/pg"), { recursive: true });
    writeFileSync(
      join(root, "node_modules/pg/package.json"),
      JSON.stringify({ name: "pg", version: "8.0.0" }),
    );
    const hashWith = async (patches: Record<string, unknown>) => {
      vi.resetModules();
      vi.doMock("../../infra/prebundle-patches.ts", async (original) => ({
        ...(await original<object>()),
        PREBUNDLE_PATCHES: patches,
      }));
      try {
        const fresh = await import("../../infra/layer-packages.ts");
        return fresh.closureHash(root, ["node_modules/pg"]);
      } finally {
        vi.doUnmock("../../infra/prebundle-patches.ts");
      }
    };
    const now = closureHash(root, ["node_modules/pg"]);
    expect(await hashWith(PREBUNDLE_PATCHES)).toBe(now);
    const edited = { ioredis: [{ ...PREBUNDLE_PATCHES.ioredis?.[0], insert: "/* another edit */ " }] };
    expect(await hashWith(edited)).not.toBe(now);
  });
});

describe("an edit to one function's handler changes that function's asset only", () => {
  /** First-party files each function's bundle is built from (esbuild's metafile, with infra's options). */
  const inputsOf = async (file: string) => {
    const b = bundlingFor("layer", packages);
    const result = await build({
      entryPoints: [join(REPO_ROOT, file)],
      bundle: true,
      platform: "node",
      format: "cjs",
      target: b.target,
      minify: true,
      external: b.externalModules,
      ...(b.define ? { define: b.define } : {}),
      absWorkingDir: REPO_ROOT,
      outfile: join(tmpdir(), "repro-metafile", "index.js"),
      write: false,
      metafile: true,
      logLevel: "error",
    });
    return Object.keys(result.metafile.inputs).filter((i) => !i.includes("node_modules/"));
  };

  it("no bundle takes in another function's handler file; only route-not-found takes the manifest", async () => {
    const entries = [
      ...functions.map((f) => `functions/${f.handler}.ts`),
      "infra/handlers/migrate-on-deploy.ts",
    ];
    const inputs = new Map<string, string[]>();
    for (const entry of entries) inputs.set(entry, await inputsOf(entry));
    for (const entry of entries)
      expect([...inputs].filter(([, files]) => files.includes(entry)).map(([e]) => e)).toEqual([entry]);
    // its route table: a manifest edit (a route, a memory size) updates route-not-found too
    expect(
      [...inputs].filter(([, files]) => files.includes("functions/manifest.ts")).map(([e]) => e),
    ).toEqual(["functions/route-not-found.ts"]);
  });
});

describe("the migrations resource re-runs on what it applies, not on code", () => {
  it("takes no property from a function's code: a code-only deploy updates the handler, not the resource", () => {
    const { template } = synth();
    const [resource] = Object.values(resourcesOf(template, "Custom::ChatMigrations"));
    const { ServiceToken, ...props } = resource?.Properties ?? {};
    expect(Object.keys(props).sort()).toEqual([
      "AppRoleSecret",
      "Database",
      "KafkaCluster",
      "MigrationsHash",
      "Partitions",
      "ServiceTimeout",
      "Topic",
    ]);
    // the Provider framework's own function (CDK's code, changed only by a CDK upgrade), not the handler
    const token = JSON.stringify(ServiceToken);
    const [providerFn] = Object.entries(resourcesOf(template, "AWS::Lambda::Function")).find(([id]) =>
      token.includes(id),
    ) ?? [""];
    expect(providerFn).toMatch(/Providerframework/);
    expect(JSON.stringify(props)).not.toMatch(/Handler|S3Key|Version/);
  });
});
