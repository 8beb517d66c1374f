import { fileURLToPath } from "node:url";
import { runner } from "node-pg-migrate";

/** The folder of SQL migrations; the CDK migration custom resource ships the same folder. */
export const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations", import.meta.url));

/** Apply every pending migration. Idempotent; concurrent callers serialize on node-pg-migrate's advisory lock. */
export async function migrate(databaseUrl: string, dir = MIGRATIONS_DIR): Promise<string[]> {
  const applied = await runner({
    databaseUrl,
    dir,
    direction: "up",
    migrationsTable: "pgmigrations",
    checkOrder: true,
    advisoryLockMode: "wait",
    log: () => {},
  });
  return applied.map((m) => m.name);
}
