import pg from "pg";
import type { TestProject } from "vitest/node";
import { migrate } from "../../layers/chat/db/migrate.ts";

/**
 * Once per run: a migrated template database. Each test file then clones it (CREATE DATABASE … TEMPLATE),
 * so runs and parallel files never share rows. TEST_DATABASE_URL names the server (default: local test db).
 */
export const ADMIN_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export default async function setup(project: TestProject) {
  const template = `chat_tpl_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(`integration tests need PostgreSQL at ${ADMIN_URL}: ${(err as Error).message}`);
  }
  await admin.query(`CREATE DATABASE ${template}`);
  await migrate(withDatabase(ADMIN_URL, template));
  await admin.end();
  project.provide("templateDatabase", template);
  return async () => {
    const c = new pg.Client({ connectionString: ADMIN_URL });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`);
    await c.end();
  };
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

declare module "vitest" {
  export interface ProvidedContext {
    templateDatabase: string;
  }
}
