import { createHash } from "node:crypto";
import { cpSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";

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

/** The folders whose code ends up in function bundles; their bare imports decide the layer. */
export const SOURCE_DIRS = ["functions", "layers", "infra/handlers"];

interface PackageJson {
  name?: string;
  version?: string;
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

/** Folders (relative to root, e.g. `node_modules/pg`) of the packages and everything they load at run time. */
export function packageClosure(root: string, packages: readonly string[]): string[] {
  const seen = new Set<string>();
  const visit = (dir: string) => {
    const rel = relative(root, dir);
    if (seen.has(rel)) return;
    seen.add(rel);
    const pkg = readJson(join(dir, "package.json"));
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

/** Copies the closure into `<outDir>/nodejs/<same relative path>`, keeping nesting so resolution is unchanged. */
export function writeLayer(root: string, closure: readonly string[], outDir: string): void {
  for (const rel of closure) {
    const src = join(root, rel);
    cpSync(src, join(outDir, "nodejs", rel), {
      recursive: true,
      dereference: true,
      filter: (path) => {
        const inner = relative(src, path);
        if (inner === "") return true;
        // Nested node_modules are their own closure entries (or not needed at all).
        if (inner === "node_modules" || inner.startsWith("node_modules/")) return false;
        return !SKIP_FILE.test(path);
      },
    });
  }
}

/** Changes only when a package in the closure changes version, so code-only deploys keep the layer version. */
export function closureHash(root: string, closure: readonly string[]): string {
  const h = createHash("sha256").update("layer-v1\n");
  for (const rel of closure) h.update(`${rel}@${readJson(join(root, rel, "package.json")).version ?? "?"}\n`);
  return h.digest("hex");
}
