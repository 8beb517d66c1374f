import type pg from "pg";
import type { Config } from "../config.ts";

interface RdsSecret {
  host: string;
  port?: number;
  username: string;
  password: string;
  dbname?: string;
}

// Secrets Manager reads are cached this long, so a rotated password reaches new connections within it.
const SECRET_MAX_AGE_SECONDS = 300;

async function readSecret(arn: string): Promise<RdsSecret> {
  // Loaded only in AWS: local runs never pay for the SDK.
  const { getSecret } = await import("@aws-lambda-powertools/parameters/secrets");
  const secret = await getSecret<RdsSecret>(arn, { transform: "json", maxAge: SECRET_MAX_AGE_SECONDS });
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
