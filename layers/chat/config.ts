import {
  _default,
  coerce,
  enum as enumOf,
  int,
  maximum,
  minimum,
  minLength,
  object,
  optional,
  type output,
  pipe,
  regex,
  string,
  transform,
  url,
} from "zod/mini";
import "./zod-locale.ts";

/**
 * Environment variables, parsed once. A bad or missing value fails at start, naming the variable.
 * zod/mini (functional API): every function parses this at init, and bundles keep only what is used.
 */
/** A century: past it the retention purge's `now() - N days` leaves Postgres's timestamp range. */
export const MAX_SESSION_RETENTION_DAYS = 36_500;

/**
 * Lambda's longest timeout, and so the longest any bound of a function can wait. Every `*_MS` setting ends at it:
 * past 2^31 - 1 ms Node's timers fire at once (TimeoutOverflowWarning, 1 ms) and Postgres refuses the setting, so a
 * timeout raised that far would fail every connection, Redis command or publish instead of waiting longer.
 */
export const MAX_TIMEOUT_MS = 900_000;
/** Hours in a century: past it a retention's `now() - N hours` leaves Postgres's timestamp range. */
export const MAX_RETENTION_HOURS = MAX_SESSION_RETENTION_DAYS * 24;
/** Postgres's integer: the write statement takes IDEMPOTENCY_TTL_SECONDS as one (about 68 years). */
const PG_INT_MAX = 2_147_483_647;

// Digits only: Number("") and Number(" ") are 0 (an empty RATE_LIMIT_PER_IP= would turn the limit off), and
// "0x10" or "1e3" are no one's way of writing a count.
const wholeNumber = string().check(regex(/^\s*\d+\s*$/, "expected a whole number (digits only)"));
const integer = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  _default(pipe(wholeNumber, coerce.number<string>().check(int(), minimum(min), maximum(max))), def);
const timeoutMs = (def: number, min: number) => integer(def, min, MAX_TIMEOUT_MS);
const flags = ["true", "false", "1", "0"] as const;
const flag = (def: boolean) =>
  pipe(
    _default(enumOf(flags), def ? "true" : "false"),
    transform((v: (typeof flags)[number]) => v === "true" || v === "1"),
  );
const list = pipe(
  _default(string(), ""),
  transform((v: string) =>
    v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  ),
);

/** MAX_CONTENT_CHARS unless set: the longest message, in code points. */
export const DEFAULT_MAX_CONTENT_CHARS = 8000;

export const configSchema = object({
  /** postgres://… ; in AWS built from DATABASE_SECRET_ARN at init instead. */
  DATABASE_URL: optional(string().check(url())),
  /** Secrets Manager secret (RDS format: host, port, username, password, dbname). */
  DATABASE_SECRET_ARN: optional(string()),
  /** In AWS, the functions' role's secret: only the deploy-time migration reads it, to create and grant that role. */
  DATABASE_APP_SECRET_ARN: optional(string()),
  /** Overrides the secret's host: the RDS Proxy endpoint (the secret names the instance, for rotation). */
  DATABASE_HOST: optional(string()),
  DATABASE_SSL: flag(false),
  /**
   * Connected through RDS Proxy: the pool sends no session settings at connect (the proxy refuses them);
   * the proxy's init query sets DB_STATEMENT_TIMEOUT_MS and SESSION_LOCK_TIMEOUT_MS (their defaults) instead.
   */
  DATABASE_PROXY: flag(false),
  DB_POOL_MAX: integer(2, 1, 100),
  DB_CONNECT_TIMEOUT_MS: timeoutMs(2000, 100),
  DB_STATEMENT_TIMEOUT_MS: timeoutMs(5000, 100),
  /** Unset: no cache, everything from Postgres. */
  REDIS_URL: optional(string()),
  /** Secrets Manager secret `{"username"?,"password"}`: REDIS_URL's AUTH credentials, read before each connection. */
  REDIS_SECRET_ARN: optional(string()),
  REDIS_TLS: flag(false),
  REDIS_CONNECT_TIMEOUT_MS: timeoutMs(50, 5),
  REDIS_COMMAND_TIMEOUT_MS: timeoutMs(50, 5),
  CACHE_HISTORY_TTL_SECONDS: integer(300, 1),
  /**
   * Bytes of a session's cached history entry. A bigger history is not cached (nor read whole from Postgres):
   * its changes and pages go to Postgres, as for a session past 500 messages.
   */
  CACHE_HISTORY_MAX_BYTES: integer(1024 * 1024, 4096, 64 * 1024 * 1024),
  CACHE_SESSION_TTL_SECONDS: integer(300, 1),
  /** Comma-separated host:port list. Unset (and no MSK_CLUSTER_ARN): events wait in the outbox. */
  KAFKA_BROKERS: list,
  MSK_CLUSTER_ARN: optional(string()),
  /** msk-iam: MSK's IAM auth; scram-sha-512: SASL/SCRAM with the credentials in KAFKA_SECRET_ARN. */
  KAFKA_AUTH: _default(enumOf(["none", "msk-iam", "scram-sha-512"]), "none"),
  /** Secrets Manager secret `{"username","password"}` for scram-sha-512 (the one Lambda's Kafka event source reads). */
  KAFKA_SECRET_ARN: optional(string()),
  KAFKA_SSL: flag(false),
  KAFKA_TOPIC: _default(string().check(minLength(1)), "chat-messages"),
  KAFKA_CLIENT_ID: _default(string(), "chat-backend"),
  /** Bound on the after-commit publish in a request. */
  KAFKA_PUBLISH_TIMEOUT_MS: timeoutMs(1000, 50),
  KAFKA_COMPRESSION: _default(enumOf(["none", "gzip"]), "none"),
  /**
   * Bytes of records per produce request (before compression). Must stay under the topic's
   * `max.message.bytes` (1 MiB by default in Kafka and MSK provisioned; MSK Serverless allows more).
   */
  KAFKA_MAX_BATCH_BYTES: integer(1_000_000, 1024, 100 * 1024 * 1024),
  OUTBOX_BATCH_SIZE: integer(500, 1, 10000),
  OUTBOX_RETENTION_HOURS: integer(24, 1, MAX_RETENTION_HOURS),
  /**
   * How long events-consumer remembers the ids it applied (its exactly-once record). Keep it above the topic's
   * retention (Kafka's default: 168 h): a redelivered event older than this would be applied again.
   */
  CONSUMED_EVENTS_RETENTION_HOURS: integer(336, 1, MAX_RETENTION_HOURS),
  IDEMPOTENCY_TTL_SECONDS: integer(86400, 60, PG_INT_MAX),
  /**
   * How long a claimed key blocks its duplicates; past it a crashed request's key can be taken over. At least the
   * function's timeout plus DB_STATEMENT_TIMEOUT_MS: a claim must outlive its request, including a statement
   * Postgres still runs after Lambda ended the request (else a retry could take the key over and run the change twice).
   */
  IDEMPOTENCY_LOCK_SECONDS: integer(30, 1),
  // 0 keeps sessions.
  SESSION_RETENTION_DAYS: integer(0, 0, MAX_SESSION_RETENTION_DAYS),
  RESPONDER: _default(enumOf(["builtin", "bedrock"]), "builtin"),
  /**
   * A foundation model id or a cross-Region inference profile id (`us.…`, `eu.…`, `global.…`), which newer Claude
   * models need. The default is Claude Haiku 4.5 through the US profile: outside the US, set `eu.…` or `global.…`.
   */
  BEDROCK_MODEL_ID: _default(string(), "us.anthropic.claude-haiku-4-5-20251001-v1:0"),
  BEDROCK_REGION: optional(string()),
  BEDROCK_TIMEOUT_MS: timeoutMs(4000, 100),
  RESPONDER_CONTEXT_MESSAGES: integer(20, 1, 200),
  RESPONDER_CONTEXT_CHARS: integer(8000, 100),
  /** Code points, at most 16,000 (MAX_BODY_BYTES follows it). The OpenAPI document states the default. */
  MAX_CONTENT_CHARS: integer(DEFAULT_MAX_CONTENT_CHARS, 1, 16000),
  /**
   * Messages a session may ever hold, deleted ones included (they stay as tombstones, and seq never goes back):
   * past it a post answers 409 session_full. Bounds what one session costs to keep and, above all, to erase,
   * which deletes its messages in one statement under the statement timeout.
   */
  MAX_SESSION_MESSAGES: integer(10_000, 3, 1_000_000),
  /**
   * Bytes of a request body. Unset: what a message of MAX_CONTENT_CHARS needs however its client escapes it
   * (requestBodyBytes), at least 64 KiB; set lower than that, the config is refused.
   */
  MAX_BODY_BYTES: optional(pipe(wholeNumber, coerce.number<string>().check(int(), minimum(1024)))),
  MAX_METADATA_BYTES: integer(4096, 2),
  SESSION_LOCK_TIMEOUT_MS: timeoutMs(3000, 10),
  RATE_LIMIT_PER_TOKEN: integer(120, 0),
  RATE_LIMIT_PER_IP: integer(600, 0),
  RATE_LIMIT_WINDOW_SECONDS: integer(60, 1),
  CORS_ORIGINS: list,
  SERVICE_VERSION: _default(string(), "0.1.0"),
  HEALTH_URL: optional(string().check(url())),
});

export type Config = Omit<output<typeof configSchema>, "MAX_BODY_BYTES"> & { MAX_BODY_BYTES: number };

export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * The largest event a message can make, in bytes: every character of its content JSON-escaped (`\u0001`,
 * 6 bytes), plus the event's other fields and the record's headers.
 */
export const maxEventBytes = (maxContentChars: number) => maxContentChars * 6 + 4096;

/**
 * The largest request body a message can need: each of its characters escaped by a client that writes ASCII
 * only (Python's `json.dumps` default: an emoji is a surrogate pair, `\ud83d\ude00`, 12 bytes), plus the rest
 * of the body (ids, flags, white space).
 */
export const requestBodyBytes = (maxContentChars: number) => maxContentChars * 12 + 4096;

export function parseConfig(env: Record<string, string | undefined>): Config {
  const result = configSchema.safeParse(env);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid environment: ${lines.join("; ")}`);
  }
  const needed = requestBodyBytes(result.data.MAX_CONTENT_CHARS);
  const body = result.data.MAX_BODY_BYTES;
  // A message the API accepts must fit in a body it accepts, however the client escapes it.
  if (body !== undefined && body < needed) {
    throw new ConfigError(
      `invalid environment: MAX_BODY_BYTES: must be at least ${needed}, the largest body MAX_CONTENT_CHARS=${result.data.MAX_CONTENT_CHARS} allows`,
    );
  }
  const cfg: Config = { ...result.data, MAX_BODY_BYTES: body ?? Math.max(65536, needed) };
  // An event that fits in no produce request could never be published, and would hold back every later one.
  const largest = maxEventBytes(cfg.MAX_CONTENT_CHARS);
  if (cfg.KAFKA_MAX_BATCH_BYTES < largest) {
    throw new ConfigError(
      `invalid environment: KAFKA_MAX_BATCH_BYTES: must be at least ${largest}, the largest event MAX_CONTENT_CHARS=${cfg.MAX_CONTENT_CHARS} allows`,
    );
  }
  // A claim must end before its record expires: a withdrawn replay is held until expiry, and a claim's lock that
  // reached it could not be told from such a record (its release would delete it).
  if (cfg.IDEMPOTENCY_LOCK_SECONDS >= cfg.IDEMPOTENCY_TTL_SECONDS)
    throw new ConfigError(
      `invalid environment: IDEMPOTENCY_LOCK_SECONDS: must be less than IDEMPOTENCY_TTL_SECONDS (${cfg.IDEMPOTENCY_TTL_SECONDS})`,
    );
  if (cfg.KAFKA_AUTH === "scram-sha-512" && !cfg.KAFKA_SECRET_ARN)
    throw new ConfigError("invalid environment: KAFKA_AUTH=scram-sha-512 needs KAFKA_SECRET_ARN");
  return cfg;
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
