import type pg from "pg";
import { readJsonSecretBounded } from "../bounded-secret-read.ts";
import type { Config } from "../config.ts";

export { SECRET_READ_TIMEOUT_MS } from "../bounded-secret-read.ts";

interface RdsSecret {
  host: string;
  port?: number;
  username: string;
  password: string;
  dbname?: string;
}

// The pool's creation, which every later request waits on, waits for this read: bounded (a failed read is tried
// again by the next request). Cached, so a rotated password reaches new connections within the cache's age.
async function readSecret(arn: string, fresh = false): Promise<RdsSecret> {
  const secret = await readJsonSecretBounded<RdsSecret>(arn, "database", fresh);
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

/**
 * The same as a URL (migrations, `npm run migrate`); `fresh` reads the secret past its cache (a retry after the
 * password was refused: a rotation may have changed it).
 */
export async function databaseUrl(cfg: Config, fresh = false): Promise<string> {
  if (cfg.DATABASE_URL) return cfg.DATABASE_URL;
  const arn = cfg.DATABASE_SECRET_ARN;
  if (!arn) throw new Error("DATABASE_URL or DATABASE_SECRET_ARN must be set");
  const secret = await readSecret(arn, fresh);
  const url = new URL("postgres://placeholder");
  url.hostname = cfg.DATABASE_HOST ?? secret.host;
  url.port = String(secret.port ?? 5432);
  url.username = encodeURIComponent(secret.username);
  url.password = encodeURIComponent(secret.password);
  url.pathname = `/${secret.dbname ?? "chat"}`;
  return url.toString();
}
