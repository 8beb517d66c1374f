import { readdirSync } from "node:fs";
import { runner } from "node-pg-migrate";
import pg from "pg";
import { MIGRATIONS_DIR } from "../../layers/chat/db/migrate.ts";
import { ADMIN_URL } from "./global-database.ts";

/** The migration files, in the order node-pg-migrate applies them. */
export const migrationFiles = (): string[] =>
  readdirSync(MIGRATIONS_DIR)
    .filter((f) => f.endsWith(".sql"))
    .sort();

/**
 * Applies (`up`) or reverts (`down`) the next `count` migrations on `url`, each in a transaction of its own as the
 * CLI runs them; `Infinity` for all of them.
 */
export async function migrateBy(url: string, direction: "up" | "down", count: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction,
      count,
      migrationsTable: "pgmigrations",
      log: () => {},
    });
  } finally {
    await client.end();
  }
}

/** One statement as the server's superuser, outside a transaction (CREATE or DROP DATABASE). */
export async function adminQuery(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}
