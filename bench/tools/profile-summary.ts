/**
 * Summarizes a V8 .cpuprofile (from `node bench/run.ts --profile` or `node --cpu-prof`): self time by
 * package / product file and by function, so "where does the time go" has an answer in numbers.
 * Usage: node bench/tools/profile-summary.ts <file.cpuprofile> [top=25]
 * (bench/tools/flamegraph.ts draws the same profile as a flame graph.)
 */
import { readFileSync } from "node:fs";
import {
  type CpuProfileNode as Node,
  type CpuProfile as Profile,
  sampleDurationUs,
} from "../lib/cpuprofile.ts";

const [file, topArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write("usage: node bench/tools/profile-summary.ts <file.cpuprofile> [top]\n");
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
profile.samples.forEach((id, i) => {
  self.set(id, (self.get(id) ?? 0) + sampleDurationUs(profile, i));
});
const total = [...self.values()].reduce((a, b) => a + b, 0);

function bucket(n: Node): string {
  const { url, functionName } = n.callFrame;
  if (!url) return functionName.startsWith("(") ? functionName : "(native/builtin)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] as string;
  if (url.startsWith("node:")) return `node:${url.slice(5).split("/")[0]}`;
  const m = /\/work\/[^/]+\/(.+)$/.exec(url) ?? /([^/]+\/[^/]+)$/.exec(url);
  return m?.[1] ?? url;
}

const byBucket = new Map<string, number>();
const byFn = new Map<string, number>();
for (const [id, us] of self) {
  const n = byId.get(id);
  if (!n) continue;
  const b = bucket(n);
  byBucket.set(b, (byBucket.get(b) ?? 0) + us);
  const fn = `${n.callFrame.functionName || "(anonymous)"} ${b}:${n.callFrame.lineNumber + 1}`;
  byFn.set(fn, (byFn.get(fn) ?? 0) + us);
}
const pct = (us: number) =>
  `${((us / total) * 100).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(6)} ms`;
const print = (title: string, m: Map<string, number>) => {
  process.stdout.write(`\n${title}\n`);
  for (const [k, v] of [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top))
    process.stdout.write(`${pct(v)}  ${k}\n`);
};
process.stdout.write(
  `${file}: ${(total / 1000).toFixed(0)} ms of samples over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s\n`,
);
print("Self time by package / file:", byBucket);
print("Self time by function:", byFn);
