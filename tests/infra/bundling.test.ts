import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, Duration, Stack } from "aws-cdk-lib";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { ChatFunction, type ChatFunctionDefaults } from "../../infra/chat-function.ts";
import { readContext } from "../../infra/context.ts";
import { DataPlane } from "../../infra/data-plane.ts";
import { DependenciesLayer } from "../../infra/dependencies-layer.ts";
import { migrationsHash } from "../../infra/handlers/migration-set.ts";
import { Migrations } from "../../infra/migrations.ts";
import { FUNCTIONS_DIR, MIGRATIONS_DIR, STUB_HANDLER } from "../../infra/paths.ts";
import { lambdaSandbox } from "./lambda-sim.ts";
import { EXTERNAL_CONTEXT } from "./synth.ts";

/** Real esbuild runs (two functions, not fifteen): proves the bundles load and work as Lambda would run them. */

// As the CLI does: record each asset's folder in the template (SAM reads the same metadata).
const ASSET_METADATA = { "aws:cdk:enable-asset-metadata": true };

function assetPaths(outdir: string, stack: Stack): Record<string, string> {
  const template = JSON.parse(readFileSync(join(outdir, `${stack.stackName}.template.json`), "utf8"));
  const paths: Record<string, string> = {};
  for (const [id, r] of Object.entries(
    template.Resources as Record<string, { Metadata?: Record<string, string> }>,
  )) {
    const asset = r.Metadata?.["aws:asset:path"];
    if (asset) paths[id] = join(outdir, asset);
  }
  return paths;
}

const pick = (paths: Record<string, string>, prefix: string) => {
  const found = Object.entries(paths).find(([id]) => id.startsWith(prefix));
  if (!found) throw new Error(`no asset for ${prefix}`);
  return found[1];
};

describe("layer mode: the migration handler (CJS) with the dependencies layer", () => {
  let task = "";
  let layer = "";

  beforeAll(() => {
    const outdir = mkdtempSync(join(tmpdir(), "cdk-bundle-"));
    const app = new App({ outdir, context: { ...EXTERNAL_CONTEXT, ...ASSET_METADATA } });
    const stack = new Stack(app, "BundleLayer");
    const deps = new DependenciesLayer(stack, "Dependencies");
    const defaults: ChatFunctionDefaults = {
      layerMode: "layer",
      layer: deps.layer,
      layerPackages: deps.packages,
      logRetention: RetentionDays.ONE_DAY,
      environment: {},
    };
    const dataPlane = new DataPlane(stack, "DataPlane", {
      ctx: readContext(app.node),
      topic: "chat-messages",
      logRetention: RetentionDays.ONE_DAY,
    });
    new Migrations(stack, "Migrations", { defaults, dataPlane, topic: "chat-messages", partitions: 1 });
    app.synth();
    const paths = assetPaths(outdir, stack);
    task = pick(paths, "MigrationsHandler");
    layer = pick(paths, "DependenciesLayer");
  });

  it("ships the SQL migrations next to the bundle", () => {
    expect(readdirSync(join(task, "migrations")).sort()).toEqual(readdirSync(MIGRATIONS_DIR).sort());
    expect(existsSync(join(task, "index.js.map"))).toBe(true);
  });

  it("resolved #chat/* and .ts imports, and left the layer's packages to require()", () => {
    const code = readFileSync(join(task, "index.js"), "utf8");
    expect(code).not.toMatch(/#chat\//);
    expect(code).toMatch(/require\("kafkajs"\)/);
    expect(code).toMatch(/require\("node-pg-migrate"\)/);
    expect(code.length).toBeLessThan(100_000); // first-party code, and the tree-shaken INLINED packages
  });

  it("loads in a Lambda-like sandbox and applies the migrations through the layer's pg", async () => {
    const sandbox = lambdaSandbox(task, layer);
    const admin = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
    const probe = new pg.Client({ connectionString: admin, connectionTimeoutMillis: 2000 });
    const loaded = sandbox.run(
      `import { createRequire } from "node:module";
       const m = createRequire(import.meta.url)("./task/index.js");
       console.log(typeof m.handler);`,
    );
    expect(loaded.trim()).toBe("function");
    try {
      await probe.connect();
    } catch (err) {
      // in CI a missing service fails the run; on a laptop without Postgres this part is skipped, loudly
      if (process.env.CI) throw err;
      console.warn(`no PostgreSQL at ${admin}: skipped running the migration bundle`);
      return;
    }
    const db = `infra_bundle_${process.pid}_${Date.now().toString(36)}`;
    await probe.query(`CREATE DATABASE ${db}`);
    try {
      const url = new URL(admin);
      url.pathname = `/${db}`;
      // The hash the stack puts in the resource's properties: the bundle must find its own copy the same set.
      const stackHash = migrationsHash(MIGRATIONS_DIR);
      const out = sandbox.run(
        `import { createRequire } from "node:module";
         const { handler } = createRequire(import.meta.url)("./task/index.js");
         const first = await handler({ RequestType: "Create", ResourceProperties: { MigrationsHash: "${stackHash}" } });
         const again = await handler({ RequestType: "Update", ResourceProperties: {} });
         const rollback = await handler({ RequestType: "Update", ResourceProperties: { MigrationsHash: "older" },
           OldResourceProperties: { MigrationsHash: "${stackHash}" } });
         console.log(JSON.stringify([first, again, rollback]));`,
        { DATABASE_URL: url.toString() },
      );
      const [first, again, rollback] = JSON.parse(out.trim().split("\n").at(-1) ?? "[]");
      expect(Number(first.Data.Applied)).toBeGreaterThan(0);
      expect(again.Data.Applied).toBe("0");
      expect(rollback.Data.Applied).toBe("0");
    } finally {
      await probe.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await probe.end();
    }
  });
});

describe("bundled mode: one self-contained ESM function", () => {
  it("runs the openapi handler from its bundle alone", () => {
    const outdir = mkdtempSync(join(tmpdir(), "cdk-bundle-"));
    const app = new App({ outdir, context: ASSET_METADATA });
    const stack = new Stack(app, "BundleEsm");
    const entry = existsSync(join(FUNCTIONS_DIR, "openapi.ts"))
      ? join(FUNCTIONS_DIR, "openapi.ts")
      : STUB_HANDLER;
    new ChatFunction(stack, "Openapi", {
      entry,
      timeout: Duration.seconds(3),
      defaults: {
        layerMode: "bundled",
        layerPackages: [],
        logRetention: RetentionDays.ONE_DAY,
        environment: {},
      },
    });
    app.synth();
    const task = pick(assetPaths(outdir, stack), "Openapi");
    expect(readdirSync(task)).toContain("index.mjs");
    const event = readFileSync(join(import.meta.dirname, "../fixtures/events/openapi.json"), "utf8");
    const out = lambdaSandbox(task).run(
      `const { handler } = await import("./task/index.mjs");
       const res = await handler(${event}, { awsRequestId: "r", functionName: "openapi", getRemainingTimeInMillis: () => 3000 });
       console.log(JSON.stringify({ statusCode: res.statusCode, openapi: JSON.parse(res.body).openapi }));`,
    );
    const result = JSON.parse(out.trim().split("\n").at(-1) ?? "{}");
    expect(result.statusCode).toBe(200);
    if (entry !== STUB_HANDLER) expect(result.openapi).toMatch(/^3\.1/);
  });
});

// Opt-in (INFRA_FULL_BUNDLE=1, ~20 s): bundles the whole app as `cdk synth` does and loads every function.
describe.runIf(process.env.INFRA_FULL_BUNDLE === "1")("the whole app, bundled", () => {
  it.each(["layer", "bundled"])(
    "%s mode: every function's bundle loads in the Lambda sandbox",
    async (layerMode) => {
      const { buildApp } = await import("../../infra/app.ts");
      const outdir = mkdtempSync(join(tmpdir(), "cdk-full-"));
      const { app, stack } = buildApp(new App({ outdir, context: { ...ASSET_METADATA, layerMode } }));
      app.synth();
      const paths = assetPaths(outdir, stack);
      const layer = Object.entries(paths).find(([id]) => id.startsWith("DependenciesLayer"))?.[1];
      for (const [name, fn] of stack.chatFunctions) {
        const id = stack.getLogicalId(fn.node.defaultChild as import("aws-cdk-lib").CfnElement);
        const task = paths[id];
        if (!task) throw new Error(`no asset for ${name}`);
        const file = layerMode === "layer" ? "index.js" : "index.mjs";
        const out = lambdaSandbox(task, layer).run(
          `const m = await import("./task/${file}"); console.log(typeof (m.handler ?? m.default?.handler));`,
        );
        expect(out.trim().split("\n").at(-1), name).toBe("function");
      }
    },
  );
});
