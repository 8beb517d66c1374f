import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * esbuild names each source in a source map relative to the output folder, which is CDK's staging folder under the
 * app's output directory: `cdk synth -o DIR`, or a synth run from another folder (infra/paths.ts allows it), put the
 * build machine's path into every map, and so into every function's asset hash (CDK hashes the bundle's files).
 * Every function would then be updated on each deploy from a fresh checkout, though nothing changed. Run after
 * esbuild (ChatFunction's afterBundling hook): names each source relative to the repository instead.
 */
export function repoRelativeSourceMaps(repoRoot: string, outputDir: string): void {
  for (const name of readdirSync(outputDir)) {
    if (!name.endsWith(".map")) continue;
    const file = join(outputDir, name);
    const map = JSON.parse(readFileSync(file, "utf8")) as { sources?: string[] };
    map.sources = (map.sources ?? []).map((source) =>
      // esbuild's own pseudo-files (`<stdin>`, `<define:…>`) name no path
      source.startsWith("<") ? source : repoRelative(repoRoot, resolve(outputDir, source)),
    );
    writeFileSync(file, JSON.stringify(map));
  }
}

function repoRelative(repoRoot: string, path: string): string {
  const rel = relative(repoRoot, path);
  if (rel !== ".." && !rel.startsWith("../") && !isAbsolute(rel)) return rel;
  // A package reached through a symlinked node_modules (a worktree's, a linked install) lives outside the checkout.
  const at = path.indexOf("/node_modules/");
  return at >= 0 ? path.slice(at + 1) : rel;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [repoRoot, outputDir] = process.argv.slice(2);
  if (!repoRoot || !outputDir)
    throw new Error("usage: node infra/source-map-paths.ts <repo root> <bundle folder>");
  repoRelativeSourceMaps(repoRoot, outputDir);
}
