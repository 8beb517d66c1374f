import type pg from "pg";
import type { Config } from "../config.ts";
import { readJsonSecret } from "../secrets.ts";
import { withTimeout } from "../timeout.ts";

interface RdsSecret {
  host: string;
  port?: number;
  username: string;
  password: string;
  dbname?: string;
}

/**
 * Bound on one read of the secret: the SDK sets none, and a read that never answers would hold the pool's
 * creation (which every later request waits on) for the sandbox's life, with Postgres fine. A failed read is tried
 * again by the next request.
 */
export const SECRET_READ_TIMEOUT_MS = 5000;

// Cached (readJsonSecret), so a rotated password reaches new connections within the cache's age.
async function readSecret(arn: string): Promise<RdsSecret> {
  const secret = await withTimeout(
    readJsonSecret<RdsSecret>(arn),
    SECRET_READ_TIMEOUT_MS,
    () => new Error(`the database secret was not read within ${SECRET_READ_TIMEOUT_MS} ms`),
  );
  if (!secret) throw new Error("database secret is empty");
  return secret;
}

/**
 * How the pool connects: DATABASE_URL locally; in AWS the RDS secret (no password in any environment
 * variable), through DATABASE_HOST (the RDS Proxy endpoint) when set. The password is read per new
 * connection from the cached secret, so rotation needs no restart.
 */
export async function connectionConfig(cfg: Config): Promise<pg.ClientConfig> {
  if (cfg.DATABASE_URL) return { connectionString: cfg.DATABASE_URL };
  const arn = cfg.DATABASE_SECRET_ARN;
  if (!arn) throw new Error("DATABASE_URL or DATABASE_SECRET_ARN must be set");
  const secret = await readSecret(arn);
  return {
    host: cfg.DATABASE_HOST ?? secret.host,
    port: secret.port ?? 5432,
    user: secret.username,
    database: secret.dbname ?? "chat",
    password: async () => (await readSecret(arn)).password,
  };
}

/** The same as a URL (migrations, `npm run migrate`). */
export async function databaseUrl(cfg: Config): Promise<string> {
  if (cfg.DATABASE_URL) return cfg.DATABASE_URL;
  const arn = cfg.DATABASE_SECRET_ARN;
  if (!arn) throw new Error("DATABASE_URL or DATABASE_SECRET_ARN must be set");
  const secret = await readSecret(arn);
  const url = new URL("postgres://placeholder");
  url.hostname = cfg.DATABASE_HOST ?? secret.host;
  url.port = String(secret.port ?? 5432);
  url.username = encodeURIComponent(secret.username);
  url.password = encodeURIComponent(secret.password);
  url.pathname = `/${secret.dbname ?? "chat"}`;
  return url.toString();
}
