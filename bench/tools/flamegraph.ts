/**
 * Draws a V8 .cpuprofile (from `node bench/run.ts --profile` or `node --cpu-prof`) as a flame graph, a
 * self-contained SVG (hover a frame for its ms), so "where does the time go" can be seen: profile-summary.ts gives
 * the same profile's self time as tables.
 *
 * Usage: node bench/tools/flamegraph.ts <file.cpuprofile> [--out FILE.svg] [--focus NAME] [--keep-idle]
 *                                       [--width N] [--min-width PX] [--root DIR]
 *   --out        where to write (default: next to the profile, .svg for .cpuprofile)
 *   --focus      only the stacks through the function NAME, rooted at it (e.g. runRequest)
 *   --keep-idle  draw (idle) too: time the thread waited, which would otherwise dwarf the rest
 *   --width      in px (default 1200); --min-width: frames narrower are left out (default 0.3)
 *   --root       the checkout the profile ran in, stripped from file paths (default: this one)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { basename, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { CpuProfile } from "../lib/cpuprofile.ts";
import { buildFlameTree, renderFlameSvg } from "../lib/flamegraph.ts";

const usage =
  "usage: node bench/tools/flamegraph.ts <file.cpuprofile> [--out FILE.svg] [--focus NAME] [--keep-idle] [--width N] [--min-width PX] [--root DIR]\n";
const { values, positionals } = parseArgs({
  options: {
    out: { type: "string" },
    focus: { type: "string" },
    "keep-idle": { type: "boolean" },
    width: { type: "string", default: "1200" },
    "min-width": { type: "string", default: "0.3" },
    root: { type: "string" },
    help: { type: "boolean" },
  },
  allowPositionals: true,
  strict: true,
});
if (values.help) {
  process.stdout.write(usage);
  process.exit(0);
}
const file = positionals[0];
const width = Number(values.width);
const minWidthPx = Number(values["min-width"]);
if (!file || positionals.length > 1 || !(width >= 200) || !(minWidthPx >= 0)) {
  process.stderr.write(usage);
  process.exit(2);
}

const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
const tree = buildFlameTree(profile, {
  keepIdle: values["keep-idle"] ?? false,
  focus: values.focus,
  // The repository this file is in, not the working directory, so the tool prints the same from anywhere
  root: resolve(values.root ?? resolve(import.meta.dirname, "../..")),
});
if (tree.ms === 0) {
  process.stderr.write(
    values.focus ? `${file}: no samples through a function named ${values.focus}\n` : `${file}: no samples\n`,
  );
  process.exit(1);
}
const out = values.out ?? `${file.replace(/\.cpuprofile$/, "")}.svg`;
writeFileSync(out, renderFlameSvg(tree, { title: basename(file), focus: values.focus, width, minWidthPx }));
process.stdout.write(
  `${out}: ${tree.ms.toFixed(0)} ms of samples${values.focus ? ` through ${values.focus}` : ""}\n`,
);
