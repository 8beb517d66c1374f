import { fileURLToPath } from "node:url";

/** The repository root; every asset path is resolved from it so `cdk synth` works from any cwd. */
export const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
export const FUNCTIONS_DIR = `${REPO_ROOT}/functions`;
export const MIGRATIONS_DIR = `${REPO_ROOT}/layers/chat/db/migrations`;
export const STUB_HANDLER = `${REPO_ROOT}/tests/fixtures/infra/stub-handler.ts`;
