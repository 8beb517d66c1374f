import type { Node } from "constructs";
import { MAX_SESSION_RETENTION_DAYS } from "#chat/config.ts";
import { CHAT_TOPIC } from "#functions/manifest.ts";

/** Every deploy-time setting, read once from CDK context (`cdk.json` or `-c key=value`). */
export type DataPlaneKind = "aws" | "external";
/** `layer`: third-party packages in the Lambda layer, CJS bundles. `bundled`: everything in each ESM bundle. */
export type LayerMode = "layer" | "bundled";

export interface ExternalEndpoints {
  /** Secrets Manager secret in RDS format (host, port, username, password, dbname). */
  databaseSecretArn?: string;
  /** Local tools only (SAM local, LocalStack): a plain DATABASE_URL, used when no secret ARN is given. */
  databaseUrl?: string;
  /** TLS to Postgres; like redisTls and kafkaSsl, true unless set false (a private network: data in the clear). */
  databaseSsl: boolean;
  /** Without credentials (refused): they would sit in plain text in the template. */
  redisUrl?: string;
  /** Secrets Manager secret `{"username"?,"password"}`: the functions read it at start-up for Redis's AUTH. */
  redisSecretArn?: string;
  redisTls: boolean;
  kafkaBrokers: string[];
  kafkaSsl: boolean;
  /** SASL/SCRAM secret for a self-managed Kafka event source; without it no event source is created. */
  kafkaSecretArn?: string;
}

export interface ChatContext {
  dataPlane: DataPlaneKind;
  layerMode: LayerMode;
  corsOrigins: string[];
  throttleRateLimit: number;
  throttleBurstLimit: number;
  alarmEmail?: string;
  logRetentionDays: number;
  logLevel: string;
  serviceName: string;
  /**
   * Powertools' namespace for the functions' own metrics (the canary's, RejectedEvents, OutboxOldestPendingSeconds);
   * undefined: the stack's name. Per stack, so that a second stack in the account and region (-c stackName=…) does
   * not add its data points to the first one's metrics, which both stacks' alarms watch by namespace and service.
   */
  metricsNamespace?: string;
  healthLatencyThresholdMs: number;
  /** HTTP API 5xx answers in 5 minutes that alarm. */
  http5xxThreshold: number;
  /** events-consumer's OffsetLag (records behind the topic) that alarms when it lasts 15 minutes. */
  offsetLagThreshold: number;
  /** Age of the oldest unpublished outbox event (s) that alarms when it lasts two 5-minute periods. */
  outboxPendingAgeThresholdSeconds: number;
  responder: "builtin" | "bedrock";
  bedrockModelId?: string;
  kafkaPartitions: number;
  /**
   * The chat events' topic: produced by the relay, consumed by events-consumer, created by the migrations. A second
   * stack on the same (external) cluster needs its own, or each stack's consumer applies the other's events.
   */
  kafkaTopic: string;
  dbInstanceType: string;
  dbMultiAz: boolean;
  deletionProtection: boolean;
  dbSecretRotationDays: number;
  /** Days a session may stay idle before maintenance erases it (SESSION_RETENTION_DAYS); 0 keeps sessions. */
  sessionRetentionDays: number;
  /** Lambda's active X-Ray tracing on every function (and, in the aws data plane, an X-Ray endpoint). */
  tracing: boolean;
  /** AZ names for the VPC (at least two); undefined: the region's first two. */
  availabilityZones?: string[];
  external?: ExternalEndpoints;
  /** Test-only: point every manifest entry at tests/fixtures/infra/stub-handler.ts. */
  stubHandlers: boolean;
}

/** Every context key the app reads (`stackName` in app.ts); docs/deploy.md's table lists them. */
export const CONTEXT_KEYS = [
  "stackName",
  "dataPlane",
  "layerMode",
  "corsOrigins",
  "throttleRateLimit",
  "throttleBurstLimit",
  "alarmEmail",
  "logRetentionDays",
  "logLevel",
  "serviceName",
  "metricsNamespace",
  "healthLatencyThresholdMs",
  "http5xxThreshold",
  "offsetLagThreshold",
  "outboxPendingAgeThresholdSeconds",
  "responder",
  "bedrockModelId",
  "kafkaPartitions",
  "kafkaTopic",
  "dbInstanceType",
  "dbMultiAz",
  "deletionProtection",
  "dbSecretRotationDays",
  "sessionRetentionDays",
  "tracing",
  "availabilityZones",
  "databaseSecretArn",
  "databaseUrl",
  "databaseSsl",
  "redisUrl",
  "redisSecretArn",
  "redisTls",
  "kafkaBrokers",
  "kafkaSsl",
  "kafkaSecretArn",
  "stubHandlers",
] as const;
const KNOWN_KEYS = new Set<string>(CONTEXT_KEYS);

/**
 * Context keys the app does not read. CDK's own keys have a `:` (feature flags, `aws:cdk:…`, lookups cached in
 * cdk.context.json) but for `cdk acknowledge`'s list. Anything else is a misspelt key: `-c sessionRetentionDay=30`
 * or `-c corsOrigin=…` would deploy with the default (no purge, no CORS) and say nothing.
 */
export function unknownContextKeys(all: Record<string, unknown>): string[] {
  return Object.keys(all).filter(
    (k) => !k.includes(":") && k !== "acknowledged-issue-numbers" && !KNOWN_KEYS.has(k),
  );
}

type Raw = (key: string) => unknown;

const str = (raw: Raw, key: string): string | undefined => {
  const v = raw(key);
  if (v === undefined || v === null || v === "") return undefined;
  return String(v);
};
const bool = (raw: Raw, key: string, def: boolean): boolean => {
  const v = str(raw, key);
  if (v === undefined) return def;
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new Error(`context ${key} must be true or false, got ${v}`);
};
const num = (raw: Raw, key: string, def: number): number => {
  const v = str(raw, key);
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`context ${key} must be a non-negative number, got ${v}`);
  return n;
};
const int = (raw: Raw, key: string, def: number, min = 0): number => {
  const n = num(raw, key, def);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`context ${key} must be a whole number of at least ${min}, got ${n}`);
  return n;
};
/**
 * A setting where 0 is no "off": a stage throttle of 0 (or a burst under 1) makes API Gateway answer every request
 * 429, and an alarm at "≥ 0 5xx" or "latency > 0 ms" is in alarm all the time; elsewhere here 0 means off.
 */
const positive = (raw: Raw, key: string, def: number, whole = false): number => {
  const n = num(raw, key, def);
  if (n === 0 || (whole && !Number.isInteger(n)))
    throw new Error(`context ${key} must be ${whole ? "a whole number of at least 1" : "above 0"}, got ${n}`);
  return n;
};
// The runtime's own bound (SESSION_RETENTION_DAYS), checked at synth rather than by every failing purge.
function retentionDays(raw: Raw): number {
  const n = int(raw, "sessionRetentionDays", 0);
  if (n > MAX_SESSION_RETENTION_DAYS)
    throw new Error(
      `context sessionRetentionDays must be at most ${MAX_SESSION_RETENTION_DAYS} (0 keeps sessions), got ${n}`,
    );
  return n;
}
// `-c corsOrigins=a,b` arrives as a string, cdk.json may hold an array.
const list = (raw: Raw, key: string): string[] => {
  const v = raw(key);
  const items = Array.isArray(v) ? v.map(String) : (str(raw, key)?.split(",") ?? []);
  return items.map((s) => s.trim()).filter(Boolean);
};
function oneOf<T extends string>(raw: Raw, key: string, values: readonly T[], def: T): T {
  const v = str(raw, key) ?? def;
  if (!values.includes(v as T))
    throw new Error(`context ${key} must be one of ${values.join(", ")}, got ${v}`);
  return v as T;
}

// Kafka's own rule for topic names; refused at synth rather than by the migrations' CreateTopics at deploy.
function kafkaTopic(raw: Raw): string {
  const v = str(raw, "kafkaTopic") ?? CHAT_TOPIC;
  if (!/^[a-zA-Z0-9._-]{1,249}$/.test(v) || v === "." || v === "..")
    throw new Error(
      `context kafkaTopic must be 1 to 249 of a-z, A-Z, 0-9, '.', '_' and '-' (not . or ..), got ${v}`,
    );
  return v;
}

// RDS subnet groups and MSK Serverless both need subnets in two AZs at least.
function availabilityZones(raw: Raw): string[] | undefined {
  const azs = list(raw, "availabilityZones");
  if (azs.length === 0) return undefined;
  if (azs.length < 2 || new Set(azs).size !== azs.length)
    throw new Error(`context availabilityZones needs two or more distinct AZ names, got ${azs.join(",")}`);
  return azs;
}

// ioredis takes credentials from the URL's user info and from `?username=`/`?password=`. The value is never
// echoed in an error: it may hold a password.
function redisUrl(raw: Raw): string | undefined {
  const v = str(raw, "redisUrl");
  if (v === undefined) return undefined;
  let url: URL;
  try {
    // as ioredis reads them: `host:port` and `//host` are redis:// URLs
    url = new URL(/^rediss?:\/\//i.test(v) ? v : `redis:${v.startsWith("//") ? "" : "//"}${v}`);
  } catch {
    throw new Error("context redisUrl must be a redis:// or rediss:// URL");
  }
  if (url.username || url.password || url.searchParams.has("username") || url.searchParams.has("password"))
    throw new Error(
      "context redisUrl must not carry credentials (they would sit in plain text in the template and every " +
        'function\'s environment): put them in a Secrets Manager secret {"username"?,"password"} and pass ' +
        "-c redisSecretArn=<its ARN>",
    );
  // ioredis sends SELECT for `/N` (or `?db=N`); a cluster-mode cache (ElastiCache Serverless, any Valkey or Redis
  // cluster) refuses it, and the client then goes on in database 0 without a word, sharing it with whatever uses it.
  const db = url.pathname.length > 1 ? url.pathname.slice(1) : url.searchParams.get("db");
  if (db !== null && !/^0+$/.test(db))
    throw new Error(
      `context redisUrl selects database ${JSON.stringify(db)}: a cluster-mode cache (ElastiCache Serverless) has ` +
        "database 0 only, and the functions would use it without a word; give the stack a cache of its own",
    );
  return v;
}

export function readContext(node: Pick<Node, "tryGetContext" | "getAllContext">): ChatContext {
  const unknown = unknownContextKeys(node.getAllContext());
  if (unknown.length > 0)
    throw new Error(
      `unknown context ${unknown.join(", ")}: a misspelt key would be ignored (docs/deploy.md lists them: ${CONTEXT_KEYS.join(", ")})`,
    );
  const raw: Raw = (key) => {
    if (!KNOWN_KEYS.has(key)) throw new Error(`infra/context.ts reads ${key}: add it to CONTEXT_KEYS`);
    return node.tryGetContext(key);
  };
  const dataPlane = oneOf(raw, "dataPlane", ["aws", "external"] as const, "aws");
  let external: ExternalEndpoints | undefined;
  if (dataPlane === "external") {
    const databaseSecretArn = str(raw, "databaseSecretArn");
    const databaseUrl = str(raw, "databaseUrl");
    if (!databaseSecretArn && !databaseUrl)
      throw new Error(
        "dataPlane=external needs -c databaseSecretArn=<RDS-format secret ARN> (or, locally, -c databaseUrl=...)",
      );
    const redisSecretArn = str(raw, "redisSecretArn");
    const redis = redisUrl(raw);
    if (redisSecretArn && !redis)
      throw new Error("context redisSecretArn needs -c redisUrl=<the Redis to log in to>");
    // Endpoints reached over the network, from outside any VPC: encrypted unless asked otherwise.
    external = {
      databaseSecretArn,
      databaseUrl: databaseSecretArn ? undefined : databaseUrl,
      databaseSsl: bool(raw, "databaseSsl", true),
      redisUrl: redis,
      redisSecretArn,
      redisTls: bool(raw, "redisTls", true),
      kafkaBrokers: list(raw, "kafkaBrokers"),
      kafkaSsl: bool(raw, "kafkaSsl", true),
      kafkaSecretArn: str(raw, "kafkaSecretArn"),
    };
  }
  return {
    dataPlane,
    layerMode: oneOf(raw, "layerMode", ["layer", "bundled"] as const, "layer"),
    corsOrigins: list(raw, "corsOrigins"),
    throttleRateLimit: positive(raw, "throttleRateLimit", 50),
    throttleBurstLimit: positive(raw, "throttleBurstLimit", 100, true),
    alarmEmail: str(raw, "alarmEmail"),
    logRetentionDays: num(raw, "logRetentionDays", 30),
    logLevel: str(raw, "logLevel") ?? "INFO",
    serviceName: str(raw, "serviceName") ?? "chat-backend",
    metricsNamespace: str(raw, "metricsNamespace"),
    healthLatencyThresholdMs: positive(raw, "healthLatencyThresholdMs", 2000),
    http5xxThreshold: positive(raw, "http5xxThreshold", 5),
    offsetLagThreshold: num(raw, "offsetLagThreshold", 1000),
    outboxPendingAgeThresholdSeconds: num(raw, "outboxPendingAgeThresholdSeconds", 300),
    responder: oneOf(raw, "responder", ["builtin", "bedrock"] as const, "builtin"),
    bedrockModelId: str(raw, "bedrockModelId"),
    // Kafka refuses 0 or 1.5 partitions, but only at deploy time, in the migration custom resource
    kafkaPartitions: int(raw, "kafkaPartitions", 6, 1),
    kafkaTopic: kafkaTopic(raw),
    dbInstanceType: str(raw, "dbInstanceType") ?? "t4g.micro",
    dbMultiAz: bool(raw, "dbMultiAz", false),
    deletionProtection: bool(raw, "deletionProtection", false),
    dbSecretRotationDays: num(raw, "dbSecretRotationDays", 30),
    sessionRetentionDays: retentionDays(raw),
    tracing: bool(raw, "tracing", false),
    availabilityZones: availabilityZones(raw),
    external,
    stubHandlers: bool(raw, "stubHandlers", false),
  };
}
