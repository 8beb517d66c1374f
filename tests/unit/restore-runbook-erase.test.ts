import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../infra/paths.ts";
import { eraseRequest } from "../../layers/chat/maintenance/maintenance.ts";

/**
 * docs/deploy.md, After a database restore, step 2: the shell an operator pastes to erase again the sessions erased
 * since the restore point. It runs here as written, with `aws` and `sleep` stand-ins on the PATH: the Logs Insights
 * query answers `Running` with part of its rows first, as GetQueryResults does while a query runs, and each
 * `lambda invoke` payload goes through the maintenance function's own parser (eraseRequest).
 */
const jq = spawnSync("jq", ["--version"], { encoding: "utf8" });
const available = jq.status === 0;

function runbookStep2(): string {
  const doc = readFileSync(join(REPO_ROOT, "docs/deploy.md"), "utf8");
  const step = doc.slice(doc.indexOf("2. **Erasures since T0 are undone**"));
  const block = /```sh\n([\s\S]*?)```/.exec(step)?.[1];
  if (!block) throw new Error("no shell block in step 2");
  return block.replace(/^ {3}/gm, "");
}

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Runs step 2 against a query that finds `erased` session ids; the payloads the maintenance function got. */
function run(erased: string[], runningPolls: number) {
  dir = mkdtempSync(join(tmpdir(), "restore-runbook-"));
  const rows = (ids: string[]) =>
    ids.map((id) => [
      { field: "session_id", value: id },
      { field: "count()", value: "1" },
    ]);
  // what the query has found while it runs: a third of its rows
  writeFileSync(
    join(dir, "running.json"),
    JSON.stringify({ status: "Running", results: rows(erased.slice(0, erased.length / 3)) }),
  );
  writeFileSync(join(dir, "complete.json"), JSON.stringify({ status: "Complete", results: rows(erased) }));
  writeFileSync(
    join(dir, "aws"),
    `#!/bin/sh
d='${dir}'
case "$1 $2" in
  "lambda get-function-configuration") echo "/aws/lambda/group-$4" ;;
  "logs start-query") echo q-1 ;;
  "logs get-query-results")
    n=$(cat "$d/polls" 2>/dev/null || echo 0); echo $((n + 1)) > "$d/polls"
    if [ "$n" -lt ${runningPolls} ]; then cat "$d/running.json"; else cat "$d/complete.json"; fi ;;
  "lambda invoke")
    for a in "$@"; do case "$a" in fileb://*) f=\${a#fileb://} ;; esac; done
    i=$(ls "$d" | grep -c '^payload-'); cp "$f" "$d/payload-$i.json"
    for a in "$@"; do out="$a"; done
    echo '{"erased":0,"absent":0,"failed":[]}' > "$out" ;;
  *) echo "unexpected aws $*" >&2; exit 2 ;;
esac
`,
  );
  writeFileSync(join(dir, "sleep"), "#!/bin/sh\nexit 0\n");
  for (const f of ["aws", "sleep"]) chmodSync(join(dir, f), 0o755);
  const res = spawnSync("bash", ["-e", "-c", runbookStep2()], {
    cwd: dir,
    env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, T0_EPOCH_SECONDS: "1795000000" },
    encoding: "utf8",
  });
  expect(res.status, res.stderr).toBe(0);
  const payloads: unknown[] = [];
  for (let i = 0; ; i++) {
    try {
      payloads.push(JSON.parse(readFileSync(join(dir, `payload-${i}.json`), "utf8")));
    } catch {
      return payloads;
    }
  }
}

const ids = (n: number) => Array.from({ length: n }, () => crypto.randomUUID());

describe.skipIf(!available)(
  `docs/deploy.md's restore runbook, step 2 (${available ? jq.stdout.trim() : "jq not installed: skipped"})`,
  () => {
    it("erases every session the query finds, not the part it had found when the results were read", () => {
      const erased = ids(30);
      const sent = run(erased, 2).flatMap((p) => eraseRequest(p) ?? []);
      expect(sent.sort()).toEqual([...erased].sort());
    });

    it("sends the ids in invokes the maintenance function takes (at most 1,000 each)", () => {
      const erased = ids(2500);
      const payloads = run(erased, 0);
      // eraseRequest throws on a list the maintenance function would refuse
      const sent = payloads.flatMap((p) => eraseRequest(p) ?? []);
      expect(sent.sort()).toEqual([...erased].sort());
      expect(payloads.length).toBe(3);
    });
  },
);
