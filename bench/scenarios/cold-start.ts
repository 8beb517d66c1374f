import { spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BuildOptions, Metafile } from "esbuild";
import { build } from "esbuild";
import { functions } from "../../functions/manifest.ts";
import type { BenchContext } from "../lib/context.ts";
import { REPO_ROOT, WORKERS } from "../lib/context.ts";
import { median, round } from "../lib/stats.ts";
import {
  FIRST_REQUEST_FUNCTIONS,
  type FirstRequestResults,
  firstRequestBench,
} from "./cold-first-request.ts";

/**
 * Cold start: every function bundled as CDK would build it, loaded by a fresh Node process: time from process
 * start to handler ready (import done), next to an empty handler bundled the same way, in the same run.
 * Both of infra's layer modes: `bundled` (one ESM file per function) and `layer` (CJS function code, the npm
 * packages in a layer folder reached through NODE_PATH, as Lambda mounts /opt/nodejs/node_modules).
 */
export type Mode = "bundled" | "layer";

export interface ColdParams {
  reps: number;
  /** null: every function of the manifest. */
  functions: string[] | null;
}

export const coldParams = (smoke: boolean): ColdParams =>
  smoke ? { reps: 1, functions: ["messages-post", "outbox-relay"] } : { reps: 9, functions: null };

export interface ModeBuild {
  mode: Mode;
  format: string;
  /** The esbuild options used (entry and outfile aside). */
  options: Record<string, unknown>;
  layerPackages: string[];
  layerBytes: number;
  layerFiles: number;
}

export interface FunctionCold {
  bundleBytes: number;
  mapBytes: number;
  /** Largest contributors to the minified output, by package. */
  topInputs: { source: string; bytes: number }[];
  /** ms from process start to handler ready: median over reps, with and without --enable-source-maps. */
  initMs: number;
  initMsNoSourceMaps: number;
  importMs: number;
  ratio: number;
  ratioNoSourceMaps: number;
  /** Layer mode: ms spent require()-ing each layer package at init (one extra run, deployed options). */
  requireMs?: Record<string, number>;
}

export interface ColdResults {
  params: ColdParams;
  bundlingSource: string;
  /** NODE_OPTIONS the functions get when deployed (from infra), applied to the "initMs" figures. */
  deployedNodeOptions: string;
  defaultLayerMode: Mode;
  modes: Record<Mode, { build: ModeBuild; empty: FunctionCold; functions: Record<string, FunctionCold> }>;
  /** Layer mode: init and the first invocations after it, with Postgres and Redis. Older files: none. */
  firstRequests?: FirstRequestResults;
}

interface CdkBundling {
  minify?: boolean;
  sourceMap?: boolean;
  sourceMapMode?: string;
  sourcesContent?: boolean;
  target?: string;
  format?: string;
  externalModules?: string[];
  banner?: string;
  footer?: string;
  define?: Record<string, string>;
  mainFields?: string[];
  loader?: Record<string, string>;
  keepNames?: boolean;
}

interface BundlingSetup {
  source: string;
  nodeOptions: string;
  defaultMode: Mode;
  forMode(mode: Mode): { bundling: CdkBundling; layerPackages: string[] };
  writeLayer?: (outDir: string, packages: string[]) => void;
}

/** infra's own bundling options when it exports them; else NodejsFunction's usual settings (and say so). */
async function bundlingSetup(): Promise<BundlingSetup> {
  try {
    const fn = (await import("../../infra/chat-function.ts")) as {
      bundlingFor: (mode: Mode, packages: readonly string[]) => CdkBundling;
    };
    const lp = (await import("../../infra/layer-packages.ts")) as {
      layerPackages: (root: string) => string[];
      writeLayer: (root: string, packages: readonly string[], outDir: string) => void;
    };
    const packages = lp.layerPackages(REPO_ROOT);
    const src = readFileSync(join(REPO_ROOT, "infra/chat-function.ts"), "utf8");
    const nodeOptions = /NODE_OPTIONS:\s*"([^"]*)"/.exec(src)?.[1] ?? "";
    let defaultMode: Mode = "layer";
    try {
      const ctx = readFileSync(join(REPO_ROOT, "infra/context.ts"), "utf8");
      const m = /"layerMode",\s*\[[^\]]*\][^"]*"(layer|bundled)"/.exec(ctx);
      if (m?.[1]) defaultMode = m[1] as Mode;
    } catch {}
    return {
      source: "infra/chat-function.ts bundlingFor() + infra/layer-packages.ts",
      nodeOptions,
      defaultMode,
      forMode: (mode) => ({
        bundling: fn.bundlingFor(mode, mode === "layer" ? packages : []),
        layerPackages: mode === "layer" ? packages : [],
      }),
      writeLayer: (outDir, pkgs) => lp.writeLayer(REPO_ROOT, pkgs, outDir),
    };
  } catch (err) {
    const fallback: CdkBundling = {
      minify: true,
      sourceMap: true,
      target: "node24",
      format: "esm",
      mainFields: ["module", "main"],
      externalModules: ["@aws-sdk/*"],
      banner: "import{createRequire}from'module';const require=createRequire(import.meta.url);",
    };
    return {
      source: `fallback NodejsFunction settings (infra bundling not importable: ${(err as Error).message})`,
      nodeOptions: "--enable-source-maps",
      defaultMode: "bundled",
      forMode: () => ({ bundling: fallback, layerPackages: [] }),
    };
  }
}

/** CDK's esbuild command line (aws-lambda-nodejs bundling.ts) as esbuild API options. */
function esbuildOptions(b: CdkBundling, entry: string, outDir: string): BuildOptions {
  const esm = b.format === "esm";
  const sourcemap = (b.sourceMapMode ?? (b.sourceMap ? "default" : undefined)) as string | undefined;
  return {
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    target: b.target ?? "node24",
    ...(b.format ? { format: b.format as "esm" | "cjs" } : {}),
    outfile: join(outDir, esm ? "index.mjs" : "index.js"),
    minify: b.minify ?? false,
    sourcemap: sourcemap === undefined ? false : sourcemap === "default" ? true : (sourcemap as "inline"),
    sourcesContent: b.sourcesContent ?? true,
    external: b.externalModules ?? ["@aws-sdk/*"],
    ...(b.banner ? { banner: { js: b.banner } } : {}),
    ...(b.footer ? { footer: { js: b.footer } } : {}),
    ...(b.define ? { define: b.define } : {}),
    ...(b.mainFields ? { mainFields: b.mainFields } : {}),
    ...(b.keepNames ? { keepNames: true } : {}),
    absWorkingDir: REPO_ROOT,
    metafile: true,
    logLevel: "warning",
  };
}

function topInputs(meta: Metafile, outFile: string): { source: string; bytes: number }[] {
  const out = Object.entries(meta.outputs).find(
    ([k]) => outFile.endsWith(k) || k.endsWith(".js") || k.endsWith(".mjs"),
  );
  const bySource = new Map<string, number>();
  for (const [path, info] of Object.entries(out?.[1].inputs ?? {})) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
    const source = m?.[1] ?? (path.startsWith("layers/") ? "layers/chat (app)" : "functions (app)");
    bySource.set(source, (bySource.get(source) ?? 0) + info.bytesInOutput);
  }
  return [...bySource.entries()]
    .map(([source, bytes]) => ({ source, bytes }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, 6);
}

function dirSize(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) {
      bytes += statSync(join(e.parentPath, e.name)).size;
      files++;
    }
  }
  return { bytes, files };
}

export interface Probe {
  ok: boolean;
  readyMs?: number;
  importMs?: number;
  error?: string;
  /** With invocations: ms of each, and the statusCode each returned. */
  invocationsMs?: number[];
  statuses?: (number | null)[];
  /** With the require-times preload: ms per package required at init. */
  requireMs?: Record<string, number>;
}

/** `invocations`: a JSON file of events to invoke the handler with once it is ready (see cold-probe.mjs). */
export function probe(
  bundle: string,
  env: Record<string, string>,
  opts: { preload?: string; invocations?: string } = {},
): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const args = [
      ...(opts.preload ? ["-r", opts.preload] : []),
      WORKERS.coldProbe,
      bundle,
      ...(opts.invocations ? [opts.invocations] : []),
    ];
    const child = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("error", reject);
    child.on("exit", () => {
      clearTimeout(timer);
      try {
        const result = JSON.parse(out.trim().split("\n").pop() ?? "") as Probe;
        const times = err
          .split("\n")
          .reverse()
          .find((l) => l.startsWith('{"requireMs"'));
        if (times) result.requireMs = (JSON.parse(times) as { requireMs: Record<string, number> }).requireMs;
        resolve(result);
      } catch {
        resolve({ ok: false, error: `no probe output; stderr: ${err.slice(0, 500)}` });
      }
    });
  });
}

const EMPTY_HANDLER = "export const handler = async () => ({ statusCode: 200 });\n";

export async function coldStartBench(ctx: BenchContext): Promise<ColdResults> {
  const p = coldParams(ctx.smoke);
  const setup = await bundlingSetup();
  ctx.log(`cold start: bundling with ${setup.source}; deployed NODE_OPTIONS="${setup.nodeOptions}"`);
  // Outside the repository, so nothing resolves through the repo's node_modules by accident.
  const root = join(tmpdir(), `chat-bench-cold-${process.pid}`);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const names = p.functions ?? functions.map((f) => f.name);
  const specs = functions.filter((f) => names.includes(f.name));
  // The Lambda runtime provides the AWS SDK v3 clients (bundles keep them external): a node_modules above
  // the bundles with the installed clients plays /var/runtime/node_modules.
  const sdkDir = join(root, "node_modules", "@aws-sdk");
  mkdirSync(sdkDir, { recursive: true });
  for (const name of readdirSync(join(REPO_ROOT, "node_modules", "@aws-sdk"))) {
    if (name.startsWith("client-"))
      symlinkSync(join(REPO_ROOT, "node_modules", "@aws-sdk", name), join(sdkDir, name));
  }
  const emptyEntry = join(root, "empty-handler.ts");
  writeFileSync(emptyEntry, EMPTY_HANDLER);
  const baseEnv: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    AWS_REGION: "us-east-1",
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "512",
    POWERTOOLS_LOG_LEVEL: "WARN",
    POWERTOOLS_SERVICE_NAME: "chat-backend",
    TZ: "UTC",
  };
  try {
    const modes = {} as ColdResults["modes"];
    const buildStarted = performance.now();
    const plan: { mode: Mode; name: string; bundle: string; env: Record<string, string> }[] = [];
    for (const mode of ["bundled", "layer"] as const) {
      const { bundling, layerPackages } = setup.forMode(mode);
      if (mode === "layer" && !setup.writeLayer) continue;
      const modeDir = join(root, mode);
      let layerBytes = 0;
      let layerFiles = 0;
      const env = { ...baseEnv };
      if (mode === "layer" && setup.writeLayer) {
        const layerDir = join(modeDir, "opt");
        setup.writeLayer(layerDir, layerPackages);
        ({ bytes: layerBytes, files: layerFiles } = dirSize(layerDir));
        env.NODE_PATH = join(layerDir, "nodejs", "node_modules");
      }
      const built: Record<string, FunctionCold> = {};
      const entries = [
        { name: "(empty handler)", entry: emptyEntry },
        ...specs.map((s) => ({ name: s.name, entry: join(REPO_ROOT, "functions", `${s.handler}.ts`) })),
      ];
      let options: BuildOptions | undefined;
      await Promise.all(
        entries.map(async ({ name, entry }) => {
          const outDir = join(modeDir, "task", name.replace(/[^a-z-]/g, ""));
          const opts = esbuildOptions(bundling, entry, outDir);
          options = opts;
          const result = await build(opts);
          const outFile = opts.outfile as string;
          const mapFile = `${outFile}.map`;
          built[name] = {
            bundleBytes: statSync(outFile).size,
            mapBytes: existsSync(mapFile) ? statSync(mapFile).size : 0,
            topInputs: result.metafile ? topInputs(result.metafile, outFile) : [],
            initMs: Number.NaN,
            initMsNoSourceMaps: Number.NaN,
            importMs: Number.NaN,
            ratio: Number.NaN,
            ratioNoSourceMaps: Number.NaN,
          };
          plan.push({ mode, name, bundle: outFile, env });
        }),
      );
      const { entryPoints: _e, outfile: _o, absWorkingDir: _a, metafile: _m, ...shown } = options ?? {};
      const empty = built["(empty handler)"] as FunctionCold;
      delete built["(empty handler)"];
      modes[mode] = {
        build: {
          mode,
          format: String(bundling.format ?? "cjs"),
          options: shown as Record<string, unknown>,
          layerPackages,
          layerBytes,
          layerFiles,
        },
        empty,
        functions: built,
      };
      ctx.log(
        `cold start: built ${entries.length} ${mode} bundles (${Math.round(performance.now() - buildStarted)} ms)`,
      );
    }

    // Interleaved: each rep loads every bundle once, with and without source maps, so drift hits all alike.
    const samples = new Map<string, { maps: number[]; plain: number[]; importMs: number[] }>();
    const deployedOptions = setup.nodeOptions;
    for (let rep = 0; rep < p.reps; rep++) {
      for (const item of plan) {
        for (const maps of [true, false]) {
          const env = { ...item.env };
          const nodeOptions = maps
            ? deployedOptions
            : deployedOptions.replace("--enable-source-maps", "").trim();
          if (nodeOptions) env.NODE_OPTIONS = nodeOptions;
          const r = await probe(item.bundle, env);
          if (!r.ok) throw new Error(`cold start of ${item.mode}/${item.name} failed: ${r.error}`);
          const key = `${item.mode}\u0000${item.name}`;
          const s = samples.get(key) ?? { maps: [], plain: [], importMs: [] };
          (maps ? s.maps : s.plain).push(r.readyMs as number);
          if (maps) s.importMs.push(r.importMs as number);
          samples.set(key, s);
        }
      }
      ctx.log(`cold start: rep ${rep + 1}/${p.reps} done`);
    }
    // Where a layer-mode init goes: one extra run per function with a preload timing each require().
    for (const item of plan.filter((x) => x.mode === "layer")) {
      const env = { ...item.env, ...(deployedOptions ? { NODE_OPTIONS: deployedOptions } : {}) };
      const r = await probe(item.bundle, env, { preload: WORKERS.requireTimes });
      const target = item.name === "(empty handler)" ? modes.layer?.empty : modes.layer?.functions[item.name];
      if (target && r.requireMs) {
        target.requireMs = Object.fromEntries(
          Object.entries(r.requireMs)
            .filter(([, ms]) => ms >= 0.5)
            .sort((a, b) => b[1] - a[1])
            .map(([k, ms]) => [k, round(ms, 1)]),
        );
      }
    }
    for (const [mode, m] of Object.entries(modes) as [Mode, ColdResults["modes"][Mode]][]) {
      const fill = (name: string, f: FunctionCold) => {
        const s = samples.get(`${mode}\u0000${name}`);
        if (!s) return;
        f.initMs = round(median(s.maps), 2);
        f.initMsNoSourceMaps = round(median(s.plain), 2);
        f.importMs = round(median(s.importMs), 2);
      };
      fill("(empty handler)", m.empty);
      for (const [name, f] of Object.entries(m.functions)) {
        fill(name, f);
        f.ratio = round(f.initMs / m.empty.initMs, 2);
        f.ratioNoSourceMaps = round(f.initMsNoSourceMaps / m.empty.initMsNoSourceMaps, 2);
      }
      m.empty.ratio = 1;
      m.empty.ratioNoSourceMaps = 1;
    }
    const firstRequests = await firstRequestBench(
      ctx,
      plan.filter((x) => x.mode === "layer" && FIRST_REQUEST_FUNCTIONS.includes(x.name)),
      root,
      { reps: p.reps, invocations: 3, nodeOptions: deployedOptions },
    );
    return {
      params: p,
      firstRequests,
      bundlingSource: setup.source,
      deployedNodeOptions: deployedOptions,
      defaultLayerMode: setup.defaultMode,
      modes,
    };
  } finally {
    if (!process.env.BENCH_KEEP_COLD) rmSync(root, { recursive: true, force: true });
  }
}
