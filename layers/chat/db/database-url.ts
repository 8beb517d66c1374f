import type { Config } from "../config.ts";

let fromSecret: Promise<string> | undefined;

/**
 * The Postgres URL: DATABASE_URL locally; in AWS built from the Secrets Manager secret at init
 * (cached for the life of the process), so no password sits in an environment variable.
 */
export function databaseUrl(cfg: Config): Promise<string> {
  if (cfg.DATABASE_URL) return Promise.resolve(cfg.DATABASE_URL);
  const arn = cfg.DATABASE_SECRET_ARN;
  if (!arn) return Promise.reject(new Error("DATABASE_URL or DATABASE_SECRET_ARN must be set"));
  fromSecret ??= readSecretUrl(arn).catch((err) => {
    fromSecret = undefined; // retry on the next call rather than caching a failure
    throw err;
  });
  return fromSecret;
}

async function readSecretUrl(arn: string): Promise<string> {
  // Loaded only in AWS: local runs never pay for the SDK.
  const { getSecret } = await import("@aws-lambda-powertools/parameters/secrets");
  const secret = await getSecret<{
    host: string;
    port?: number;
    username: string;
    password: string;
    dbname?: string;
  }>(arn, { transform: "json", maxAge: 300 });
  if (!secret) throw new Error("database secret is empty");
  const url = new URL("postgres://placeholder");
  url.hostname = secret.host;
  url.port = String(secret.port ?? 5432);
  url.username = encodeURIComponent(secret.username);
  url.password = encodeURIComponent(secret.password);
  url.pathname = `/${secret.dbname ?? "chat"}`;
  return url.toString();
}
