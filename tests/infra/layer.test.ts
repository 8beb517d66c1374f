import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { transformSync } from "esbuild";
import { describe, expect, it } from "vitest";
import {
  closureHash,
  INLINED,
  importedPackages,
  isRequirable,
  layerPackages,
  PREBUNDLED,
  packageClosure,
  packageName,
  writeLayer,
} from "../../infra/layer-packages.ts";
import { REPO_ROOT } from "../../infra/paths.ts";
import { SHARED_REDIS_URL } from "../helpers/chat-fixture.ts";
import { ADMIN_URL } from "../helpers/global-database.ts";
import { lambdaSandbox } from "./lambda-sim.ts";

const packages = layerPackages(REPO_ROOT);
const closure = packageClosure(REPO_ROOT, packages);
const dependencies = Object.keys(
  (
    JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    }
  ).dependencies,
);

describe("which packages go into the layer", () => {
  it("holds the data layer's heavy dependencies", () => {
    expect(packages).toEqual(expect.arrayContaining(["pg", "ioredis", "kafkajs"]));
  });

  it("leaves zod out: each bundle inlines the few zod/mini functions it uses", () => {
    // Tree-shaken zod/mini is ~15 KB per bundle and loads in a few ms; require("zod/mini") from the layer loads
    // zod's whole CJS build, every locale included, ~40 ms of every cold start.
    expect(INLINED.has("zod")).toBe(true);
    expect(packages).not.toContain("zod");
    expect(closure.filter((p) => p.endsWith("node_modules/zod"))).toEqual([]);
  });

  it("bundles the Powertools logger and metrics into each function too (docs/deploy.md), not the layer", () => {
    for (const p of ["@aws-lambda-powertools/logger", "@aws-lambda-powertools/metrics"]) {
      expect(INLINED.has(p), p).toBe(true);
      expect(packages, p).not.toContain(p);
    }
  });

  it("gets a new layer hash when a package in the closure changes version, and only then", () => {
    const root = mkdtempSync(join(tmpdir(), "layer-hash-"));
    const install = (version: string) => {
      mkdirSync(join(root, "node_modules/pg"), { recursive: true });
      writeFileSync(join(root, "node_modules/pg/package.json"), JSON.stringify({ name: "pg", version }));
      return closureHash(root, ["node_modules/pg"]);
    };
    const first = install("8.13.0");
    expect(install("8.13.0")).toBe(first);
    // a stale hash would keep the old layer version: the functions would run the old driver
    expect(install("8.13.1")).not.toBe(first);
  });

  it("only lists packages the code imports and package.json depends on", () => {
    const imported = importedPackages(REPO_ROOT);
    for (const p of packages) {
      expect(dependencies, p).toContain(p);
      expect(imported.has(p), p).toBe(true);
    }
  });

  it("keeps ESM-only packages (middy) and the runtime's SDK clients out", () => {
    expect(packages.filter((p) => p.startsWith("@middy/") || p.startsWith("@aws-sdk/client-"))).toEqual([]);
    expect(closure.filter((p) => /node_modules\/(@aws-sdk\/client-|@types\/)/.test(p))).toEqual([]);
    expect(isRequirable({ exports: { ".": { import: { types: "./a.d.ts", default: "./a.js" } } } })).toBe(
      false,
    );
    expect(isRequirable({ exports: { ".": { import: "./a.mjs", require: "./a.cjs" } } })).toBe(true);
    expect(packageName("@aws-lambda-powertools/parameters/secrets")).toBe(
      "@aws-lambda-powertools/parameters",
    );
  });
});

describe("the layer as Lambda sees it", () => {
  const out = mkdtempSync(join(tmpdir(), "chat-layer-"));
  writeLayer(REPO_ROOT, packages, out);
  const files = readdirSync(out, { recursive: true }).map(String);

  it("contains no native addon (built on x64, it must run on arm64) and no type declarations", () => {
    expect(files.filter((f) => f.endsWith(".node"))).toEqual([]);
    expect(files.filter((f) => f.endsWith(".d.ts"))).toEqual([]);
    expect(files).toContain("nodejs/node_modules/pg/package.json");
  });

  it("keeps every copied package's licence and notice files, LICENSE.md included", () => {
    const legal = (dir: string) => readdirSync(dir).filter((f) => /^(licen[cs]e|notice|copying)/i.test(f));
    const missing = packageClosure(REPO_ROOT, packages, { shipped: true })
      .filter((rel) => !PREBUNDLED.has(rel.replace(/^.*node_modules\//, "")))
      .flatMap((rel) => legal(join(REPO_ROOT, rel)).map((f) => `${rel}/${f}`))
      .filter((file) => !files.includes(`nodejs/${file}`));
    // glob, minimatch, lru-cache, minipass, path-scurry (BlueOak-1.0.0), balanced-match and get-caller-file keep
    // theirs in LICENSE.md: the layer shipped their code without it
    expect(missing).toEqual([]);
  });

  it("ships ioredis and pg as one bundle each, with their licenses, and none of their dependencies' folders", () => {
    expect([...PREBUNDLED].sort()).toEqual(["ioredis", "pg"]);
    for (const name of PREBUNDLED) {
      const mine = files.filter((f) => f.startsWith(`nodejs/node_modules/${name}/`)).sort();
      expect(mine, name).toEqual([
        `nodejs/node_modules/${name}/LICENSE`,
        `nodejs/node_modules/${name}/THIRD_PARTY_LICENSES`,
        `nodejs/node_modules/${name}/index.js`,
        `nodejs/node_modules/${name}/package.json`,
      ]);
    }
    const notices = readFileSync(join(out, "nodejs/node_modules/ioredis/THIRD_PARTY_LICENSES"), "utf8");
    for (const dep of ["denque@", "@ioredis/commands@", "cluster-key-slot@", "debug@"])
      expect(notices, dep).toContain(dep);
    // denque and pg-protocol are inside the bundles; the full closure (for the layer's hash) still lists them
    for (const dep of ["denque", "cluster-key-slot", "pg-protocol", "pg-pool"]) {
      expect(files, dep).not.toContain(`nodejs/node_modules/${dep}/package.json`);
      expect(closure, dep).toContain(`node_modules/${dep}`);
    }
  });

  it("ships ioredis with its command table patch (infra/prebundle-patches.ts) and npm's ioredis's commands", async () => {
    const code = readFileSync(join(out, "nodejs/node_modules/ioredis/index.js"), "utf8");
    // the property added, then deleted, before the command loop
    expect(code.match(/__dictionaryMode/g)).toHaveLength(2);
    const sandbox = lambdaSandbox(join(REPO_ROOT, "tests/fixtures/infra"), out);
    const script = `
      import { createRequire } from "node:module";
      const require = createRequire(process.cwd() + "/task/index.js");
      const { Redis } = require("ioredis");
      console.log(JSON.stringify(Object.getOwnPropertyNames(Object.getPrototypeOf(Redis.prototype))));`;
    const shipped = JSON.parse(sandbox.run(script).trim().split("\n").at(-1) ?? "[]") as string[];
    const { Redis } = await import("ioredis");
    const npm = Object.getOwnPropertyNames(Object.getPrototypeOf(Redis.prototype));
    expect(npm.length).toBeGreaterThan(500);
    expect(shipped).toEqual(npm);
  });

  it("ships the prebundled drivers minified, patched or not (a smaller file to load at each cold start)", () => {
    for (const name of PREBUNDLED) {
      const code = readFileSync(join(out, `nodejs/node_modules/${name}/index.js`), "utf8");
      // minifying it again gains next to nothing; the unminified bundle is more than twice the size
      expect(transformSync(code, { format: "cjs", minify: true }).code.length, name).toBeGreaterThan(
        code.length * 0.9,
      );
    }
  });

  it("the bundled drivers talk to a real Postgres and Redis from the sandbox", () => {
    const sandbox = lambdaSandbox(join(REPO_ROOT, "tests/fixtures/infra"), out);
    const script = `
      import { createRequire } from "node:module";
      const require = createRequire(process.cwd() + "/task/index.js");
      const pg = require("pg");
      const { Redis } = require("ioredis");
      const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
      await client.connect();
      const { rows } = await client.query("SELECT $1::int + 1 AS n, now() AS at", [41]);
      await client.end();
      const redis = new Redis(process.env.REDIS_URL, { maxRetriesPerRequest: 1 });
      const pong = await redis.ping();
      const echoed = await redis.call("ECHO", "layer");
      redis.disconnect();
      console.log(JSON.stringify({ n: rows[0].n, at: rows[0].at instanceof Date, pong, echoed,
        from: [require.resolve("pg"), require.resolve("ioredis")] }));`;
    const result = JSON.parse(
      sandbox
        .run(script, { DATABASE_URL: ADMIN_URL, REDIS_URL: SHARED_REDIS_URL })
        .trim()
        .split("\n")
        .at(-1) ?? "{}",
    );
    expect(result).toEqual({
      n: 42,
      at: true,
      pong: "PONG",
      echoed: "layer",
      from: [
        join(sandbox.dir, "opt/nodejs/node_modules/pg/index.js"),
        join(sandbox.dir, "opt/nodejs/node_modules/ioredis/index.js"),
      ],
    });
  });

  it("loads every package with require() through NODE_PATH alone", () => {
    const sandbox = lambdaSandbox(join(REPO_ROOT, "tests/fixtures/infra"), out);
    const script = `
      import { createRequire } from "node:module";
      const require = createRequire(process.cwd() + "/task/index.js");
      const loaded = ${JSON.stringify(packages)}.map((p) => [p, typeof require(p)]);
      require("@aws-lambda-powertools/parameters/secrets");
      require("aws-msk-iam-sasl-signer-js").generateAuthToken;
      console.log(JSON.stringify(loaded));`;
    const loaded = JSON.parse(sandbox.run(script)) as [string, string][];
    expect(loaded.map(([p]) => p)).toEqual(packages);
  });
});
