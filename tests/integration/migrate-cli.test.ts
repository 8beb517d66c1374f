import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_URL, withDatabase } from "../helpers/global-database.ts";
import { adminQuery } from "../helpers/migrations.ts";

const CLI = fileURLToPath(new URL("../../layers/chat/db/migrate-cli.ts", import.meta.url));

/** `npm run migrate` as a user runs it: its own process, only the environment given here. */
function migrateCli(env: Record<string, string>) {
  const { PATH = "", HOME = "" } = process.env;
  return spawnSync(process.execPath, [CLI], {
    env: { PATH, HOME, ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
}

describe("npm run migrate", () => {
  // an empty database, not the migrated template's clone: the CLI has everything to apply
  const name = `chat_t_${randomBytes(6).toString("hex")}`;
  const url = withDatabase(ADMIN_URL, name);
  beforeAll(() => adminQuery(`CREATE DATABASE ${name}`));
  afterAll(() => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));

  it("without a database setting, says which one it needs in one line and exits 1", () => {
    const run = migrateCli({});
    expect(run.status).toBe(1);
    expect(run.stderr.trim()).toBe("migrate: DATABASE_URL or DATABASE_SECRET_ARN must be set");
  });

  it("migrates DATABASE_URL, then finds it up to date", () => {
    const first = migrateCli({ DATABASE_URL: url });
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^applied: \d+_/);
    const again = migrateCli({ DATABASE_URL: url });
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe("database is up to date");
  });
});
