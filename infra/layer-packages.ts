import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { buildSync, version as esbuildVersion, transformSync } from "esbuild";
import { applyPrebundlePatches, PREBUNDLE_PATCHES } from "./prebundle-patches.ts";

/**
 * Which npm packages go into the dependencies layer, and their on-disk closure. Pure file-system code, no CDK,
 * so tests can check it directly.
 */

/**
 * AWS SDK clients (client-kafka, client-bedrock-runtime, ...) come from the Lambda runtime: never bundled, never
 * in the layer. Other @aws-sdk packages a library pins (the MSK IAM signer's credential chain) ship with it.
 */
export const SDK_CLIENTS = "@aws-sdk/client-*";
export const RUNTIME_PROVIDED = /^@aws-sdk\/client-/;

/**
 * Packages always inlined (tree-shaken ESM) into each function's bundle, never shipped in the layer: small in a
 * bundle, slow to require() file by file from the layer, and loaded by (nearly) every function at init.
 * - zod: the code uses zod/mini's named functions, so a bundle keeps 25–40 KB of it, loaded in a few ms, whereas
 *   require("zod/mini") from the layer loads its whole CJS build, every locale included (~40 ms per cold start).
 * - Powertools logger and metrics (with their commons): ~25 KB in a bundle instead of ~30 CommonJS files
 *   (~14 ms per cold start, about half of it file resolution and loading). Their per-invocation state lives on
 *   globalThis (the Lambda InvokeStore), so a copy per bundle next to the layer's (parameters) is harmless.
 */
export const INLINED = new Set(["zod", "@aws-lambda-powertools/logger", "@aws-lambda-powertools/metrics"]);

/**
 * Layer packages shipped as one minified CommonJS file each (esbuild) instead of their npm file trees: the two
 * drivers every chat function loads at init. require() then reads and compiles one file instead of resolving,
 * stat-ing and wrapping dozens (ioredis: 11 packages, pg: 12), which cuts their load time by about a third.
 * Only packages used through their main entry qualify (kafkajs is patched through a deep import, node-pg-migrate
 * loads migration files at run time); pg stays one copy for node-pg-migrate, which requires it as a peer.
 */
export const PREBUNDLED = new Set(["ioredis", "pg"]);

/** Optional requires inside the prebundled packages that must stay requires (absent in Lambda, guarded by try). */
const PREBUNDLE_EXTERNAL = ["pg-native", "pg-cloudflare", "cloudflare:sockets"];

/** The folders whose code ends up in function bundles; their bare imports decide the layer. */
export const SOURCE_DIRS = ["functions", "layers", "infra/handlers"];

interface PackageJson {
  name?: string;
  version?: string;
  license?: string;
  main?: string;
  exports?: unknown;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

const readJson = (file: string): PackageJson => JSON.parse(readFileSync(file, "utf8")) as PackageJson;

/** "@scope/name/sub/path" → "@scope/name"; "name/sub" → "name". */
export function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? specifier);
}

function* sourceFiles(dir: string): Generator<string> {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(path);
    else if (/\.(ts|js|mjs|cjs)$/.test(entry.name) && !entry.name.endsWith(".d.ts")) yield path;
  }
}

const IMPORT_RE = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)["']([^"'./#][^"']*)["']/g;
const TYPE_ONLY_RE = /^\s*(?:import|export)\s+type\s/;

/** Bare package names imported (not type-only) by the code under SOURCE_DIRS. */
export function importedPackages(root: string): Set<string> {
  const found = new Set<string>();
  for (const dir of SOURCE_DIRS) {
    for (const file of sourceFiles(join(root, dir))) {
      for (const line of readFileSync(file, "utf8").split("\n")) {
        if (TYPE_ONLY_RE.test(line)) continue;
        for (const m of line.matchAll(IMPORT_RE)) {
          const spec = m[1];
          if (spec && !spec.startsWith("node:")) found.add(packageName(spec));
        }
      }
    }
  }
  return found;
}

/**
 * `require()` must be able to load the package: a CJS bundle reaches the layer through NODE_PATH only. ESM-only
 * packages whose exports offer no `require`/`node`/`default` condition (e.g. @middy/*) stay in the bundles.
 */
export function isRequirable(pkg: PackageJson): boolean {
  if (pkg.exports === undefined) return true;
  const allows = (target: unknown): boolean => {
    if (target === null || target === undefined) return false;
    if (typeof target === "string") return true;
    if (Array.isArray(target)) return target.some(allows);
    const map = target as Record<string, unknown>;
    if (Object.keys(map).some((k) => k.startsWith("."))) return allows(map["."]);
    return ["require", "node", "default"].some((c) => c in map && allows(map[c]));
  };
  return allows(pkg.exports);
}

/**
 * Top-level layer packages: imported by the code, listed in `dependencies`, require()-able, not runtime-provided,
 * not INLINED.
 */
export function layerPackages(root: string): string[] {
  const deps = readJson(join(root, "package.json")).dependencies ?? {};
  return [...importedPackages(root)]
    .filter((name) => name in deps && !RUNTIME_PROVIDED.test(name) && !INLINED.has(name))
    .filter((name) => isRequirable(readJson(join(root, "node_modules", name, "package.json"))))
    .sort();
}

/** Node's lookup: the nearest node_modules/<name> walking up from the requiring package's folder. */
function resolveFrom(fromDir: string, name: string, root: string): string | undefined {
  let dir = fromDir;
  for (;;) {
    if (!dir.endsWith("/node_modules")) {
      const candidate = join(dir, "node_modules", name);
      if (existsSync(join(candidate, "package.json"))) return candidate;
    }
    if (dir === root) return undefined;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * Folders (relative to root, e.g. `node_modules/pg`) of the packages and everything they load at run time.
 * With `shipped`, what the layer holds: a PREBUNDLED package's dependencies are inside its bundle, not folders.
 */
export function packageClosure(
  root: string,
  packages: readonly string[],
  opts: { shipped?: boolean } = {},
): string[] {
  const seen = new Set<string>();
  const visit = (dir: string) => {
    const rel = relative(root, dir);
    if (seen.has(rel)) return;
    seen.add(rel);
    const pkg = readJson(join(dir, "package.json"));
    if (opts.shipped && PREBUNDLED.has(pkg.name ?? "")) return;
    const optionalPeers = pkg.peerDependenciesMeta ?? {};
    const wanted = [
      ...Object.keys(pkg.dependencies ?? {}),
      ...Object.keys(pkg.optionalDependencies ?? {}),
      // A required peer is loaded at run time too; optional peers (AWS SDK clients, middy) are not.
      ...Object.keys(pkg.peerDependencies ?? {}).filter((p) => !optionalPeers[p]?.optional),
    ];
    for (const name of wanted) {
      if (RUNTIME_PROVIDED.test(name) || name.startsWith("@types/")) continue;
      const found = resolveFrom(dir, name, root);
      if (found) visit(found);
      else if (!(name in (pkg.optionalDependencies ?? {})) && !(name in (pkg.peerDependencies ?? {})))
        throw new Error(`${rel} needs ${name}, which is not installed: run npm install`);
    }
  };
  for (const name of packages) {
    const dir = resolveFrom(root, name, root);
    if (!dir) throw new Error(`layer package ${name} is not installed: run npm install`);
    visit(dir);
  }
  return [...seen].sort();
}

// Type declarations, sources and maps are never loaded at run time (Node does not strip types under node_modules).
const SKIP_FILE = /(\.d\.[cm]?ts|\.[cm]?ts|\.map|\.md|\.markdown)$/i;
// Licence and notice texts ship with the code whatever their extension: glob, minimatch, lru-cache and others keep
// theirs in LICENSE.md, and their licences (BlueOak-1.0.0, MIT, ISC) ask that every copy carry it.
export const LEGAL_FILE = /^(licen[cs]e|notice|copying)/i;

/**
 * Writes the layer for `packages` under `<outDir>/nodejs/`: each PREBUNDLED package as one bundle, every other
 * folder of the closure copied at the same relative path, keeping nesting so resolution is unchanged.
 */
export function writeLayer(root: string, packages: readonly string[], outDir: string): void {
  for (const rel of packageClosure(root, packages, { shipped: true })) {
    const src = join(root, rel);
    const pkg = readJson(join(src, "package.json"));
    if (PREBUNDLED.has(pkg.name ?? "")) {
      writePrebundled(root, src, pkg, join(outDir, "nodejs", rel));
      continue;
    }
    cpSync(src, join(outDir, "nodejs", rel), {
      recursive: true,
      dereference: true,
      filter: (path) => {
        const inner = relative(src, path);
        if (inner === "") return true;
        // Nested node_modules are their own closure entries (or not needed at all).
        if (inner === "node_modules" || inner.startsWith("node_modules/")) return false;
        return LEGAL_FILE.test(basename(path)) || !SKIP_FILE.test(path);
      },
    });
  }
}

/**
 * The package as `index.js` (minified CommonJS, license comments kept) with a package.json that points at it, its
 * LICENSE, and THIRD_PARTY_LICENSES: the license text of every package the bundle took in.
 */
function writePrebundled(root: string, src: string, pkg: PackageJson, dest: string): void {
  mkdirSync(dest, { recursive: true });
  // Bundled unminified first, so PREBUNDLE_PATCHES find the package's own text; minified after.
  const bundled = buildSync({
    entryPoints: [src],
    // esbuild names each module in the bundle by its path from the working directory (`__commonJS({"node_modules/pg/
    // lib/index.js"(…)`): from the repository, not from wherever the synth runs, so the same hash is the same files.
    absWorkingDir: root,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node24",
    legalComments: "inline",
    external: PREBUNDLE_EXTERNAL,
    write: false,
    logLevel: "error",
  }).outputFiles.map((f) => f.text);
  const minified = transformSync(applyPrebundlePatches(pkg.name ?? "", bundled.join("")), {
    format: "cjs",
    target: "node24",
    minify: true,
    legalComments: "eof",
    logLevel: "error",
  });
  writeFileSync(join(dest, "index.js"), minified.code);
  writeFileSync(
    join(dest, "package.json"),
    `${JSON.stringify({ name: pkg.name, version: pkg.version, main: "index.js", license: pkg.license }, null, 2)}\n`,
  );
  const licenseOf = (dir: string) => readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  const own = licenseOf(src);
  if (own) cpSync(join(src, own), join(dest, own));
  const notices = packageClosure(root, [pkg.name as string])
    .filter((rel) => join(root, rel) !== src)
    .map((rel) => {
      const dep = readJson(join(root, rel, "package.json"));
      const file = licenseOf(join(root, rel));
      const text = file
        ? readFileSync(join(root, rel, file), "utf8").trim()
        : `License: ${dep.license ?? "?"}`;
      return `${dep.name}@${dep.version}\n\n${text}\n`;
    });
  writeFileSync(join(dest, "THIRD_PARTY_LICENSES"), notices.join(`\n${"-".repeat(72)}\n\n`));
}

/**
 * Changes only when a package in the closure changes version, or what builds the layer does (the prefix, the
 * patches, esbuild), so code-only deploys keep the layer version.
 */
export function closureHash(root: string, closure: readonly string[], bundler = esbuildVersion): string {
  // The prefix changes whenever writeLayer ships other files for the same versions (v3: licence texts in .md), so
  // deployed stacks get the new layer; so does any edit to the patches, or another esbuild, which writes the
  // PREBUNDLED files (CDK takes an asset whose hash it has already uploaded as the same asset).
  const h = createHash("sha256").update(`layer-v3 prebundled:${[...PREBUNDLED].join(",")}\n`);
  h.update(`patches:${JSON.stringify(PREBUNDLE_PATCHES)}\n`);
  h.update(`esbuild:${bundler}\n`);
  for (const rel of closure) h.update(`${rel}@${readJson(join(root, rel, "package.json")).version ?? "?"}\n`);
  return h.digest("hex");
}
