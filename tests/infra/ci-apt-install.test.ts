import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../infra/paths.ts";

/**
 * .ci/run installs its Debian packages through .ci/apt-install (on a new machine every run: librdkafka1 is not on
 * one). Here apt-get and sleep are stand-ins on the PATH: each apt-get call is logged, and `update` fails as many
 * times as the test says, as a mirror that fails for a moment does (apt-get exits 100).
 */
let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function run(failingUpdates: number, ...packages: string[]) {
  dir = mkdtempSync(join(tmpdir(), "ci-apt-"));
  const log = join(dir, "calls");
  writeFileSync(
    join(dir, "apt-get"),
    `#!/bin/sh
echo "$*" >> '${log}'
if [ "$1" = update ] && [ "$(grep -c '^update' '${log}')" -le ${failingUpdates} ]; then
  echo "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease" >&2; exit 100
fi
exit 0
`,
  );
  writeFileSync(join(dir, "sleep"), "#!/bin/sh\nexit 0\n");
  for (const f of ["apt-get", "sleep"]) chmodSync(join(dir, f), 0o755);
  const res = spawnSync("bash", [join(REPO_ROOT, ".ci/apt-install"), ...packages], {
    env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
    encoding: "utf8",
  });
  const calls = (() => {
    try {
      return readFileSync(log, "utf8").trim().split("\n");
    } catch {
      return [];
    }
  })();
  return { status: res.status, calls, stderr: res.stderr };
}

describe(".ci/apt-install", () => {
  it("rides out an apt-get update that fails twice, then installs the packages", () => {
    const { status, calls, stderr } = run(2, "librdkafka1", "redis-server");
    expect(status, stderr).toBe(0);
    expect(calls).toEqual([
      "update -qq",
      "update -qq",
      "update -qq",
      "install -y -qq -o DPkg::Lock::Timeout=120 librdkafka1 redis-server",
    ]);
  });

  it("gives up with a failure after four failed tries", () => {
    const { status, calls } = run(10, "librdkafka1");
    expect(status).not.toBe(0);
    expect(calls).toEqual(Array(4).fill("update -qq"));
  });

  it("does nothing without packages", () => {
    expect(run(10)).toMatchObject({ status: 0, calls: [] });
  });
});
