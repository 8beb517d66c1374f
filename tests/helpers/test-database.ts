import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";
import { ADMIN_URL, withDatabase } from "./global-database.ts";

export interface TestDatabase {
  url: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

/** A fresh database cloned from the migrated template: this test file's own. */
export async function createTestDatabase(poolMax = 10): Promise<TestDatabase> {
  const name = `chat_t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  // CREATE DATABASE … TEMPLATE fails while another session uses the template; files start in parallel. Bounded
  // by time, not attempts: on a loaded machine each clone takes longer, and 50 attempts (≈ 5 s) may run out.
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await admin.query(`CREATE DATABASE ${name} TEMPLATE ${inject("templateDatabase")}`);
      break;
    } catch (err) {
      if (Date.now() > deadline || !/being accessed by other users/.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
    }
  }
  await admin.end();
  const url = withDatabase(ADMIN_URL, name);
  const pool = new pg.Pool({ connectionString: url, max: poolMax });
  pool.on("error", () => {});
  return {
    url,
    pool,
    async drop() {
      await pool.end();
      const c = new pg.Client({ connectionString: ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
