import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../../infra/paths.ts";

/**
 * A poor man's Lambda: the function code in <dir>/task, the layer in <dir>/opt (on NODE_PATH, as /opt/nodejs/
 * node_modules is), and only the AWS SDK clients in <dir>/node_modules, the runtime's SDK, which Lambda makes
 * resolvable from both require() and import. Runs outside the repo, so nothing resolves from the project's
 * node_modules by accident.
 */
export function lambdaSandbox(
  taskAsset: string,
  layerAsset?: string,
): { dir: string; run(script: string, env?: Record<string, string>): string } {
  const dir = mkdtempSync(join(tmpdir(), "lambda-sim-"));
  cpSync(taskAsset, join(dir, "task"), { recursive: true });
  if (layerAsset) cpSync(layerAsset, join(dir, "opt"), { recursive: true });
  const sdk = join(dir, "node_modules", "@aws-sdk");
  mkdirSync(sdk, { recursive: true });
  const installed = join(REPO_ROOT, "node_modules", "@aws-sdk");
  for (const name of readdirSync(installed).filter((n) => n.startsWith("client-")))
    symlinkSync(join(installed, name), join(sdk, name));
  return {
    dir,
    run(script, env = {}) {
      return execFileSync(process.execPath, ["--input-type=module", "-e", script], {
        cwd: dir,
        encoding: "utf8",
        timeout: 60_000,
        env: {
          PATH: process.env.PATH ?? "",
          AWS_REGION: "us-east-1",
          LAMBDA_TASK_ROOT: join(dir, "task"),
          NODE_PATH: join(dir, "opt", "nodejs", "node_modules"),
          ...env,
        },
      });
    },
  };
}
