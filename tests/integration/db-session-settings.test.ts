import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../layers/chat/config.ts";
import { migrate } from "../../layers/chat/db/migrate.ts";
import { buildPool } from "../../layers/chat/db/pool.ts";
import { sessionSettingsSql } from "../../layers/chat/db-session-settings.ts";
import { ADMIN_URL, withDatabase } from "../helpers/global-database.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

const dbs: TestDatabase[] = [];
const scratch: string[] = [];
afterAll(async () => {
  for (const db of dbs) await db.drop();
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  for (const name of scratch) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
});

const SETTINGS =
  "SELECT current_setting('statement_timeout') AS statement, current_setting('lock_timeout') AS lock, current_setting('application_name') AS app";

describe("database session settings", () => {
  it("a direct connection sends them at connect; behind RDS Proxy none, and the proxy's init query gives the same", async () => {
    const db = await createTestDatabase(2);
    dbs.push(db);
    const direct = buildPool(db.url, parseConfig({}));
    const proxied = buildPool(db.url, parseConfig({ DATABASE_PROXY: "true" }));
    try {
      const sent = (await direct.query(SETTINGS)).rows[0];
      expect(sent).toEqual({ statement: "5s", lock: "3s", app: "chat-backend" });
      const client = await proxied.connect();
      try {
        // nothing sent: the server's defaults
        expect((await client.query(SETTINGS)).rows[0]).toMatchObject({ statement: "0", lock: "0" });
        // what RDS Proxy runs on each server connection it opens
        await client.query(sessionSettingsSql(parseConfig({})));
        expect((await client.query(SETTINGS)).rows[0]).toMatchObject({
          statement: sent.statement,
          lock: sent.lock,
        });
      } finally {
        client.release();
      }
    } finally {
      await direct.end();
      await proxied.end();
    }
  });

  it("migrations are not bound by the server's statement timeout (RDS Proxy's init query sets 5 s)", async () => {
    const name = `chat_migrate_timeout_${process.pid}`;
    scratch.push(name);
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
      // every statement of a session on this database is cancelled after 1 ms unless the session says otherwise
      await admin.query(`ALTER DATABASE ${name} SET statement_timeout = 1`);
    } finally {
      await admin.end();
    }
    const applied = await migrate(withDatabase(ADMIN_URL, name));
    expect(applied).toContain("1732600000000_initial-schema");
    expect(applied).toContain("1764201600000_consumed-events-pruning");
  });

  it("a migration waits at most 5 s for a lock, and one older than a migration already run is refused", async () => {
    const name = `chat_migrate_order_${process.pid}`;
    scratch.push(name);
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
    } finally {
      await admin.end();
    }
    const url = withDatabase(ADMIN_URL, name);
    const dir = mkdtempSync(join(tmpdir(), "migrations-"));
    const write = (file: string, up: string) =>
      writeFileSync(join(dir, file), `-- Up Migration\n${up}\n-- Down Migration\nSELECT 1;\n`);
    try {
      write("2000_probe.sql", `CREATE TABLE probe AS ${SETTINGS};`);
      expect(await migrate(url, dir)).toEqual(["2000_probe"]);
      const db = new pg.Client({ connectionString: url });
      await db.connect();
      try {
        // a deploy's DDL must not queue the application's writes behind its lock for long
        expect((await db.query("SELECT statement, lock FROM probe")).rows).toEqual([
          { statement: "0", lock: "5s" },
        ]);
        // a migration merged late with an older timestamp: applied after a newer one, it could see another schema
        write("1000_late.sql", "CREATE TABLE late (id int);");
        await expect(migrate(url, dir)).rejects.toThrow(/1000_late/);
        expect((await db.query("SELECT to_regclass('late') AS t")).rows).toEqual([{ t: null }]);
      } finally {
        await db.end();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
