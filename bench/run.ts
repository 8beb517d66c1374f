/**
 * `npm run bench`: every benchmark, each figure next to its reference in the same run, reported as ratios
 * against the targets (PASS/MISS). Writes bench/results/<timestamp>.json, docs/performance.md (the generated
 * block) and docs/performance-latency.svg.
 * `npm run bench:smoke`: the same with tiny counts (~10 s), output in a temporary folder; exits 0 whatever the
 * figures, non-zero only when a benchmark itself crashes.
 * Options (--help lists them; an unknown one stops the run): --only write,history,kafka,cold (a partial run
 * writes its results file only, not the document, unless --out DIR) · --out DIR ·
 * --profile (worker CPU profiles, each drawn as a flame graph) · --no-wait · --report FILE (rewrite the document
 * and chart from a results file, no benchmark).
 * Environment, for digging: BENCH_PLAN_DUMP=DIR writes the last EXPLAIN ANALYZE plan of each explained statement
 * there as JSON; BENCH_KEEP_COLD=1 keeps the cold-start bundles and layer in the temporary folder.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { type BenchContext, makeContext, REPO_ROOT } from "./lib/context.ts";
import type { CpuProfile } from "./lib/cpuprofile.ts";
import { benchDatabases, serverInfo } from "./lib/db.ts";
import { buildFlameTree, renderFlameSvg } from "./lib/flamegraph.ts";
import { chart, markdown, mergeDocument, outputDirs, type RunInfo } from "./lib/report.ts";
import { type BenchResults, evaluateTargets } from "./lib/targets.ts";
import { quietKnownWarnings } from "./lib/warnings.ts";
import { coldStartBench } from "./scenarios/cold-start.ts";
import { historyBench } from "./scenarios/history.ts";
import { kafkaBench } from "./scenarios/kafka.ts";
import { writeBench } from "./scenarios/write.ts";

quietKnownWarnings();
const started = performance.now();
const runStart = Date.now();
const USAGE = `usage: node bench/run.ts [--smoke] [--only write,history,kafka,cold] [--out DIR] [--profile]
                         [--no-wait] [--report FILE] [--help]`;
// strict: a mistyped option stops here instead of starting a six-minute run without it
const { values: args } = (() => {
  try {
    return parseArgs({
      strict: true,
      allowPositionals: false,
      options: {
        smoke: { type: "boolean" },
        only: { type: "string" },
        out: { type: "string" },
        profile: { type: "boolean" },
        "no-wait": { type: "boolean" },
        report: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
})();
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

const PHASES = ["write", "history", "kafka", "cold"] as const;
type Phase = (typeof PHASES)[number];
const smoke = args.smoke === true;
const only = (args.only?.split(",").map((s) => s.trim()) ?? [...PHASES]) as Phase[];
for (const p of only)
  if (!PHASES.includes(p)) throw new Error(`--only: unknown benchmark ${p} (${PHASES.join(", ")})`);
const outDir = args.out ?? (smoke ? join(tmpdir(), "chat-bench-smoke") : undefined);
const profileDir = join(REPO_ROOT, "bench", "results", "profiles");
const log = (m: string) =>
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1)}s] ${m}\n`);

/** A full run waits (bounded) for the machine to be quiet: other engineers' test suites skew every figure. */
async function waitForQuiet(): Promise<void> {
  if (smoke || args["no-wait"]) return;
  const until = Date.now() + 5 * 60_000;
  while ((loadavg()[0] as number) > 1.5 && Date.now() < until) {
    log(
      `waiting for a quieter machine (1-min load ${(loadavg()[0] as number).toFixed(2)}; at most 5 min, --no-wait skips)`,
    );
    await new Promise((r) => setTimeout(r, 15_000));
  }
}

function git(): RunInfo["git"] {
  try {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: REPO_ROOT })
      .toString()
      .trim();
    const dirty = execFileSync(
      "git",
      ["status", "--porcelain", "--", "functions", "layers", "local", "package.json"],
      {
        cwd: REPO_ROOT,
      },
    )
      .toString()
      .split("\n")
      .filter(Boolean)
      .map((l) => l.slice(3));
    return { commit, dirty };
  } catch {
    return { commit: "unknown", dirty: [] };
  }
}

/** --report FILE: rebuild docs/performance.md and the chart from a results file, without running anything. */
function reportOnly(file: string): number {
  const saved = JSON.parse(readFileSync(file, "utf8")) as { info: RunInfo; results: BenchResults };
  const targets = evaluateTargets(saved.results);
  const docsDir = outDir ?? join(REPO_ROOT, "docs");
  const svg = chart(saved.results, saved.info);
  if (svg) writeFileSync(join(docsDir, "performance-latency.svg"), svg);
  const docPath = join(docsDir, "performance.md");
  writeFileSync(
    docPath,
    mergeDocument(docPath, markdown(saved.info, saved.results, targets, "performance-latency.svg")),
  );
  process.stdout.write(`Rewrote ${docPath} from ${file}\n`);
  return 0;
}

async function main(): Promise<number> {
  const fromFile = args.report;
  if (fromFile) return reportOnly(fromFile);
  await waitForQuiet();
  log(`${smoke ? "smoke" : "full"} run: ${only.join(", ")}`);
  const dbs = await benchDatabases();
  const cleanup = async () => {
    await dbs.dropAll().catch((err) => log(`cleanup failed: ${String(err)}`));
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      log(`${signal}: dropping the bench databases`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  const workerExecArgv: string[] = [];
  if (args.profile) {
    mkdirSync(profileDir, { recursive: true });
    workerExecArgv.push("--cpu-prof", `--cpu-prof-dir=${profileDir}`);
  }
  const ctx: BenchContext = makeContext({ smoke, dbs, workerExecArgv, started });
  const results: BenchResults = {};
  const load: RunInfo["load"] = {};
  const crashes: string[] = [];
  const run = async (name: Phase, fn: (c: BenchContext) => Promise<unknown>) => {
    if (!only.includes(name)) return;
    const before = loadavg()[0] as number;
    try {
      (results as Record<string, unknown>)[name] = await fn(ctx);
    } catch (err) {
      crashes.push(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      log(`${name} CRASHED: ${err instanceof Error ? err.message : String(err)}`);
    }
    load[name] = [before, loadavg()[0] as number];
  };
  let info: Record<string, string>;
  try {
    info = await serverInfo();
    if (smoke) {
      // Figures do not matter here: run the four benchmarks side by side to stay short.
      await Promise.all([
        run("write", writeBench),
        run("history", historyBench),
        run("kafka", kafkaBench),
        run("cold", coldStartBench),
      ]);
    } else {
      await run("write", writeBench);
      await run("history", historyBench);
      await run("kafka", kafkaBench);
      await run("cold", coldStartBench);
    }
  } finally {
    await cleanup();
  }

  const targets = evaluateTargets(results);
  const date = new Date().toISOString();
  const stamp = date.replace(/:/g, "-").replace(/\.\d+Z$/, "Z");
  const { results: resultsDir, docs: docsDir } = outputDirs({
    repoRoot: REPO_ROOT,
    out: outDir,
    partial: only.length < PHASES.length,
  });
  mkdirSync(resultsDir, { recursive: true });
  if (docsDir) mkdirSync(docsDir, { recursive: true });
  const resultsFile = join(resultsDir, `${smoke ? "smoke-" : ""}${stamp}.json`);
  const runInfo: RunInfo = {
    date,
    smoke,
    command: smoke
      ? "npm run bench:smoke"
      : only.length === PHASES.length
        ? "npm run bench"
        : `node bench/run.ts --only ${only.join(",")}`,
    durationSeconds: (performance.now() - started) / 1000,
    resultsFile: relative(REPO_ROOT, resultsFile).startsWith("..")
      ? resultsFile
      : relative(REPO_ROOT, resultsFile),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      ...info,
    },
    git: git(),
    load,
  };
  writeFileSync(resultsFile, `${JSON.stringify({ info: runInfo, targets, results, crashes }, null, 1)}\n`);
  const chartName = "performance-latency.svg";
  const svg = docsDir ? chart(results, runInfo) : undefined;
  if (svg && docsDir) writeFileSync(join(docsDir, chartName), svg);
  const docPath = docsDir ? join(docsDir, "performance.md") : undefined;
  if (docPath) writeFileSync(docPath, mergeDocument(docPath, markdown(runInfo, results, targets, chartName)));

  process.stdout.write(`\nTargets (${smoke ? "smoke run: figures meaningless" : "full run"}):\n`);
  for (const t of targets)
    process.stdout.write(
      `  ${t.invalid ? "INVALID" : t.pass ? "PASS" : "MISS"}  ${t.target}: ${t.measured} → ${t.value} (${t.limit})\n`,
    );
  process.stdout.write(
    `\nResults: ${resultsFile}\nReport:  ${
      docPath
        ? `${docPath}${svg && docsDir ? ` and ${join(docsDir, chartName)}` : ""}`
        : `none (a partial run leaves docs/performance.md as is; --out DIR writes one there, --report ${resultsFile} rewrites it)`
    }\n`,
  );
  if (args.profile)
    for (const svgFile of drawProfiles(profileDir, runStart))
      process.stdout.write(`Flame graph: ${svgFile}\n`);
  process.stdout.write(`Took ${((performance.now() - started) / 1000).toFixed(1)} s.\n`);
  if (crashes.length) {
    process.stderr.write(`\n${crashes.length} benchmark(s) crashed:\n${crashes.join("\n\n")}\n`);
    return 1;
  }
  return 0;
}

/** A flame graph next to each profile the workers of this run wrote (bench/tools/flamegraph.ts draws others). */
function drawProfiles(dir: string, since: number): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".cpuprofile") && statSync(join(dir, f)).mtimeMs >= since)
    .map((f) => {
      const file = join(dir, f);
      const tree = buildFlameTree(JSON.parse(readFileSync(file, "utf8")) as CpuProfile, { root: REPO_ROOT });
      const out = file.replace(/\.cpuprofile$/, ".svg");
      writeFileSync(out, renderFlameSvg(tree, { title: f }));
      return relative(REPO_ROOT, out);
    });
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(
      `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
