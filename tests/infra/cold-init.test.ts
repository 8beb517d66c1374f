import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BuildOptions, build } from "esbuild";
import { beforeAll, describe, expect, it } from "vitest";
import { bundlingFor } from "../../infra/chat-function.ts";
import type { LayerMode } from "../../infra/context.ts";
import { layerPackages, writeLayer } from "../../infra/layer-packages.ts";
import { REPO_ROOT } from "../../infra/paths.ts";
import { lambdaSandbox } from "./lambda-sim.ts";

/**
 * What a function loads at init (issue 7, cold start), on bundles built with infra's bundling options (as
 * bench/scenarios/cold-start.ts builds them): each function loads what it uses during init (no cost moved to the
 * first request) and nothing it never uses.
 */

const packages = layerPackages(REPO_ROOT);
const work = mkdtempSync(join(tmpdir(), "cold-init-"));
const layerDir = join(work, "layer");

/** esbuild with the options CDK derives from bundlingFor() (aws-lambda-nodejs's command line). */
async function bundle(mode: LayerMode, name: string, entry: Pick<BuildOptions, "entryPoints" | "stdin">) {
  const b = bundlingFor(mode, mode === "layer" ? packages : []);
  const outdir = join(work, mode, name);
  await build({
    ...entry,
    bundle: true,
    platform: "node",
    target: b.target,
    format: b.format === "esm" ? "esm" : "cjs",
    outfile: join(outdir, mode === "layer" ? "index.js" : "index.mjs"),
    minify: true,
    external: b.externalModules,
    ...(b.banner ? { banner: { js: b.banner } } : {}),
    ...(b.define ? { define: b.define } : {}),
    ...(b.mainFields ? { mainFields: b.mainFields } : {}),
    absWorkingDir: REPO_ROOT,
    logLevel: "error",
  });
  return outdir;
}

/** Loads a layer-mode bundle in the Lambda sandbox; returns every module name it require()d during init. */
function requiredAtInit(task: string): string[] {
  const out = lambdaSandbox(task, layerDir).run(
    `import Module from "node:module";
     const seen = new Set();
     const load = Module._load;
     Module._load = function (request, ...rest) { seen.add(request); return load.call(this, request, ...rest); };
     const m = await import("./task/index.js");
     if (typeof m.handler !== "function") throw new Error("no handler");
     console.log(JSON.stringify([...seen]));`,
  );
  return JSON.parse(out.trim().split("\n").at(-1) ?? "[]") as string[];
}

beforeAll(() => writeLayer(REPO_ROOT, packages, layerDir));

describe("layer mode: what each function requires during init", () => {
  const fn = (name: string) =>
    bundle("layer", name, { entryPoints: [join(REPO_ROOT, "functions", `${name}.ts`)] });

  it("openapi serves a static document: neither pg nor ioredis (nor kafkajs)", async () => {
    const loaded = requiredAtInit(await fn("openapi"));
    expect(loaded).not.toContain("ioredis");
    expect(loaded).not.toContain("pg");
    expect(loaded).not.toContain("kafkajs");
  });

  it("health loads the drivers it pings (pg, ioredis) at init", async () => {
    const loaded = requiredAtInit(await fn("health"));
    expect(loaded).toEqual(expect.arrayContaining(["pg", "ioredis"]));
  });

  it("a chat function still loads pg and ioredis during init, not on its first request", async () => {
    const loaded = requiredAtInit(await fn("messages-post"));
    expect(loaded).toEqual(expect.arrayContaining(["pg", "ioredis"]));
    // inlined, tree-shaken: nothing of zod nor of the Powertools logger comes from the layer
    expect(
      loaded.filter((m) => m.startsWith("zod") || m.startsWith("@aws-lambda-powertools/logger")),
    ).toEqual([]);
  });
});

describe("redis-client.ts requires ioredis on first use, in both bundle formats", () => {
  const entry = {
    stdin: {
      contents: `export { closeRedis, getRedis } from "#chat/cache/redis-client.ts";`,
      resolveDir: REPO_ROOT,
      loader: "ts" as const,
    },
  };
  const script = (file: string) =>
    `import Module from "node:module";
     const seen = new Set();
     const load = Module._load;
     Module._load = function (request, ...rest) { seen.add(request); return load.call(this, request, ...rest); };
     const m = await import("./task/${file}");
     const before = seen.has("ioredis");
     const redis = m.getRedis();
     console.log(JSON.stringify({ before, ping: typeof redis?.ping, status: typeof redis?.status, same: m.getRedis() === redis }));
     await m.closeRedis();`;
  // Nothing listens on port 1: the client is built and then closed, never used.
  const env = { REDIS_URL: "redis://127.0.0.1:1" };

  it.each(["layer", "bundled"] as const)("%s", async (mode) => {
    const task = await bundle(mode, "redis-client", entry);
    const out = lambdaSandbox(task, mode === "layer" ? layerDir : undefined).run(
      script(mode === "layer" ? "index.js" : "index.mjs"),
      env,
    );
    const result = JSON.parse(out.trim().split("\n").at(-1) ?? "{}");
    expect(result).toEqual({ before: false, ping: "function", status: "string", same: true });
  });
});
