import { z } from "zod";

/** Environment variables, parsed once. A bad or missing value fails at start, naming the variable. */
const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max).default(def);
const flag = (def: boolean) =>
  z
    .enum(["true", "false", "1", "0"])
    .default(def ? "true" : "false")
    .transform((v) => v === "true" || v === "1");
const list = z
  .string()
  .default("")
  .transform((v) =>
    v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );

export const configSchema = z.object({
  /** postgres://… ; in AWS built from DATABASE_SECRET_ARN at init instead. */
  DATABASE_URL: z.string().url().optional(),
  /** Secrets Manager secret (RDS format: host, port, username, password, dbname). */
  DATABASE_SECRET_ARN: z.string().optional(),
  /** Overrides the secret's host: the RDS Proxy endpoint (the secret names the instance, for rotation). */
  DATABASE_HOST: z.string().optional(),
  DATABASE_SSL: flag(false),
  DB_POOL_MAX: int(2, 1, 100),
  DB_CONNECT_TIMEOUT_MS: int(2000, 100),
  DB_STATEMENT_TIMEOUT_MS: int(5000, 100),
  /** Unset: no cache, everything from Postgres. */
  REDIS_URL: z.string().optional(),
  REDIS_TLS: flag(false),
  REDIS_CONNECT_TIMEOUT_MS: int(50, 5),
  REDIS_COMMAND_TIMEOUT_MS: int(50, 5),
  CACHE_HISTORY_TTL_SECONDS: int(300, 1),
  CACHE_SESSION_TTL_SECONDS: int(300, 1),
  CACHE_SUGGESTIONS_TTL_SECONDS: int(300, 1),
  /** Comma-separated host:port list. Unset (and no MSK_CLUSTER_ARN): events wait in the outbox. */
  KAFKA_BROKERS: list,
  MSK_CLUSTER_ARN: z.string().optional(),
  KAFKA_AUTH: z.enum(["none", "msk-iam"]).default("none"),
  KAFKA_SSL: flag(false),
  KAFKA_TOPIC: z.string().min(1).default("chat-messages"),
  KAFKA_CLIENT_ID: z.string().default("chat-backend"),
  /** Bound on the after-commit publish in a request. */
  KAFKA_PUBLISH_TIMEOUT_MS: int(1000, 50),
  KAFKA_COMPRESSION: z.enum(["none", "gzip"]).default("none"),
  OUTBOX_BATCH_SIZE: int(500, 1, 10000),
  OUTBOX_RETENTION_HOURS: int(24, 1),
  IDEMPOTENCY_TTL_SECONDS: int(86400, 60),
  /** How long a claimed key blocks its duplicates; past it a crashed request's key can be taken over. ≥ the function timeout. */
  IDEMPOTENCY_LOCK_SECONDS: int(15, 1),
  SESSION_RETENTION_DAYS: int(0, 0),
  RESPONDER: z.enum(["builtin", "bedrock"]).default("builtin"),
  BEDROCK_MODEL_ID: z.string().default("anthropic.claude-3-haiku-20240307-v1:0"),
  BEDROCK_REGION: z.string().optional(),
  BEDROCK_TIMEOUT_MS: int(4000, 100),
  RESPONDER_CONTEXT_MESSAGES: int(20, 1, 200),
  RESPONDER_CONTEXT_CHARS: int(8000, 100),
  MAX_CONTENT_CHARS: int(8000, 1, 100000),
  MAX_BODY_BYTES: int(65536, 1024),
  MAX_METADATA_BYTES: int(4096, 2),
  SESSION_LOCK_TIMEOUT_MS: int(3000, 10),
  RATE_LIMIT_PER_TOKEN: int(120, 0),
  RATE_LIMIT_PER_IP: int(600, 0),
  RATE_LIMIT_WINDOW_SECONDS: int(60, 1),
  CORS_ORIGINS: list,
  SERVICE_VERSION: z.string().default("0.1.0"),
  HEALTH_URL: z.string().url().optional(),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

export function parseConfig(env: Record<string, string | undefined>): Config {
  const result = configSchema.safeParse(env);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid environment: ${lines.join("; ")}`);
  }
  return result.data;
}

let cached: Config | undefined;

/** The process-wide config, read once from process.env. */
export function config(): Config {
  cached ??= parseConfig(process.env);
  return cached;
}

/** For tests and the local runner, which change the environment before the first request. */
export function resetConfig(): void {
  cached = undefined;
}
