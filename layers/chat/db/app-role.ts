import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import pg from "pg";
import { readJsonSecret } from "../secrets.ts";
import type { Queryable } from "./chat-store.ts";

/**
 * What the application may do: read and write rows. No DDL, no TRUNCATE, not the tables' owner. The default
 * privileges grant a table a later migration creates (as this owner) in that migration's own commit: the previous
 * release keeps running meanwhile, and its writes may reach the table through a trigger before this grant runs
 * again, after the last migration, or never, if a later one fails and the deploy rolls back.
 */
const GRANTS = (role: string) => `
GRANT USAGE ON SCHEMA public TO ${role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${role};
REVOKE ALL ON TABLE pgmigrations FROM ${role};
REVOKE ALL ON SEQUENCE pgmigrations_id_seq FROM ${role};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${role};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ${role};`;

export interface AppRole {
  username: string;
  password: string;
}

/**
 * The role the functions connect as, run by the migrations (as the database's owner) after they applied: created
 * with the secret's password, or given it if the role exists (a replaced secret must not lock the functions out;
 * the secret's current password is the role's anyway once a rotation finished), then granted the rows of every
 * table, the migrations' own bookkeeping excepted, and every table created later (GRANTS); run on every deploy.
 */
export async function ensureAppRole(db: Queryable, role: AppRole): Promise<void> {
  // CREATE/ALTER ROLE and GRANT take no bind parameters: quoted by pg as Postgres's quote_ident / quote_literal do.
  const name = pg.escapeIdentifier(role.username);
  const exists = await db.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [role.username]);
  await db.query(
    `${exists.rowCount ? "ALTER" : "CREATE"} ROLE ${name} LOGIN PASSWORD ${pg.escapeLiteral(scramVerifier(role.password))}`,
  );
  await db.query(GRANTS(name));
}

const SCRAM_ITERATIONS = 4096; // Postgres's own default (scram_iterations)

/**
 * The SCRAM-SHA-256 verifier Postgres would store for `password` (RFC 5802 / 7677, Postgres's text form). Sent
 * instead of the password, which would otherwise sit in the statement's text, where a server logging DDL writes
 * it down; Postgres stores a verifier it is given as it is. Printable ASCII only (what Secrets Manager generates):
 * Postgres prepares other passwords (SASLprep) before hashing them, which this does not repeat.
 */
export function scramVerifier(password: string, salt = randomBytes(16)): string {
  if (!/^[\x20-\x7e]+$/.test(password))
    throw new Error("the application role's password must be printable ASCII");
  const salted = pbkdf2Sync(password, salt, SCRAM_ITERATIONS, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest("base64");
  const serverKey = createHmac("sha256", salted).update("Server Key").digest("base64");
  return `SCRAM-SHA-256$${SCRAM_ITERATIONS}:${salt.toString("base64")}$${storedKey}:${serverKey}`;
}

/**
 * The deploy's step: the role named by its secret (RDS format), ensured through `ownerUrl` (the owner's connection,
 * the one the migrations ran on). Returns the role's name, which is no secret.
 */
export async function grantAppRoleFromSecret(ownerUrl: string, secretArn: string): Promise<string> {
  // Past the cache: a warm deploy sandbox holds what it read up to 5 minutes ago, and setting a password rotated
  // away since would lock every function out (the proxy logs in with the secret's current one).
  const secret = await readJsonSecret<Partial<AppRole>>(secretArn, true);
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
