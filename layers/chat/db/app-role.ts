import pg from "pg";
import { readJsonSecret } from "../secrets.ts";
import type { Queryable } from "./chat-store.ts";

/** What the application may do: read and write rows. No DDL, no TRUNCATE, not the tables' owner. */
const GRANTS = (role: string) => `
GRANT USAGE ON SCHEMA public TO ${role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${role};
REVOKE ALL ON TABLE pgmigrations FROM ${role};
REVOKE ALL ON SEQUENCE pgmigrations_id_seq FROM ${role};`;

export interface AppRole {
  username: string;
  password: string;
}

/**
 * The role the functions connect as, run by the migrations (as the database's owner) after they applied: created
 * with the secret's password, or given it if the role exists (a replaced secret must not lock the functions out;
 * the secret's current password is the role's anyway once a rotation finished), then granted the rows of every
 * table, the migrations' own bookkeeping excepted; run on every deploy, so a new table is covered too.
 */
export async function ensureAppRole(db: Queryable, role: AppRole): Promise<void> {
  // CREATE/ALTER ROLE and GRANT take no bind parameters: quoted by pg as Postgres's quote_ident / quote_literal do.
  const name = pg.escapeIdentifier(role.username);
  const exists = await db.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [role.username]);
  await db.query(
    `${exists.rowCount ? "ALTER" : "CREATE"} ROLE ${name} LOGIN PASSWORD ${pg.escapeLiteral(role.password)}`,
  );
  await db.query(GRANTS(name));
}

/**
 * The deploy's step: the role named by its secret (RDS format), ensured through `ownerUrl` (the owner's connection,
 * the one the migrations ran on). Returns the role's name, which is no secret.
 */
export async function grantAppRoleFromSecret(ownerUrl: string, secretArn: string): Promise<string> {
  const secret = await readJsonSecret<Partial<AppRole>>(secretArn);
  if (!secret?.username || !secret.password)
    throw new Error("the application role's secret has no username or password");
  const client = new pg.Client({ connectionString: ownerUrl });
  client.on("error", () => {}); // a lost connection rejects the statement; without a listener it ends the process
  await client.connect();
  try {
    await ensureAppRole(client, { username: secret.username, password: secret.password });
  } finally {
    await client.end();
  }
  return secret.username;
}
