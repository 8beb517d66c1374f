import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { findPostgresBin } from "../../helpers/private-postgres.ts";

/** Where each scenario leaves its figures; scripts/reliability-report.ts turns them into docs/reliability.md. */
export const FIGURES_DIR = fileURLToPath(new URL("../.figures", import.meta.url));

export interface Invariant {
  name: string;
  ok: boolean;
  detail?: string;
}

export interface ScenarioFigures {
  /** File name and sort key, e.g. "1a-redis-stop-start". */
  id: string;
  title: string;
  /** What was done to which backend. */
  fault: string;
  /** e.g. "c=16, 14 s". */
  load: string;
  /** Counts and times; printed and tabulated, never asserted here. */
  figures: Record<string, number | string>;
  /** What the test asserts, and whether it held in this run. */
  invariants: Invariant[];
  notes?: string[];
  durationSeconds: number;
  generatedAt: string;
  environment: Record<string, string | number>;
}

function versionOf(file: string, args: string[]): string {
  try {
    return /\d+(\.\d+)+/.exec(execFileSync(file, args, { encoding: "utf8" }))?.[0] ?? "?";
  } catch {
    return "?";
  }
}

let environment: Record<string, string | number> | undefined;
function describeEnvironment(): Record<string, string | number> {
  environment ??= {
    machine: `${cpus().length} × ${cpus()[0]?.model.split(" ").slice(0, 2).join(" ") ?? "CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    postgres: versionOf(join(findPostgresBin(), "pg_ctl"), ["--version"]),
    redis: versionOf("redis-server", ["--version"]),
  };
  return environment;
}

export function writeFigures(f: Omit<ScenarioFigures, "generatedAt" | "environment">): ScenarioFigures {
  const full: ScenarioFigures = {
    ...f,
    generatedAt: new Date().toISOString(),
    environment: describeEnvironment(),
  };
  mkdirSync(FIGURES_DIR, { recursive: true });
  writeFileSync(`${FIGURES_DIR}/${f.id}.json`, `${JSON.stringify(full, null, 2)}\n`);
  const failed = f.invariants.filter((i) => !i.ok);
  console.log(
    [
      `── ${f.id}: ${f.title}`,
      `   fault: ${f.fault}; load: ${f.load}; ${f.durationSeconds}s`,
      `   ${Object.entries(f.figures)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ")}`,
      ...f.invariants.map(
        (i) => `   ${i.ok ? "✓" : "✗"} ${i.name}${i.ok || !i.detail ? "" : `: ${i.detail}`}`,
      ),
      ...(f.notes ?? []).map((n) => `   note: ${n}`),
      failed.length ? `   ${failed.length} invariant(s) violated` : "   all invariants held",
    ].join("\n"),
  );
  return full;
}

/** A list shown in a detail: the first few items and how many there were. */
export function sample(items: string[], n = 3): string {
  return items.length === 0
    ? ""
    : `${items.length}: ${items.slice(0, n).join("; ")}${items.length > n ? "; …" : ""}`;
}
