import { fileURLToPath } from "node:url";
import { runner } from "node-pg-migrate";
import pg from "pg";

/** The folder of SQL migrations; the CDK migration custom resource ships the same folder. */
export const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations", import.meta.url));

/** Apply every pending migration. Idempotent; concurrent callers serialize on node-pg-migrate's advisory lock. */
export async function migrate(databaseUrl: string, dir = MIGRATIONS_DIR): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  // A lost connection rejects the running statement (the deploy retries); pg also emits `error`, which without
  // a listener would end the process (the migration function, or the local runner at start).
  client.on("error", () => {});
  await client.connect();
  try {
    // Whatever the server's defaults (RDS Proxy's init query bounds every statement to 5 s): a migration's DDL
    // may take long, but must not queue the application's writes behind its lock for long (the deploy retries).
    await client.query("SET statement_timeout = 0; SET lock_timeout = 5000");
    const applied = await runner({
      dbClient: client,
      dir,
      direction: "up",
      migrationsTable: "pgmigrations",
      checkOrder: true,
      advisoryLockMode: "wait",
      log: () => {},
    });
    return applied.map((m) => m.name);
  } finally {
    await client.end();
  }
}
