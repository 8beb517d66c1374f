import type { CloudFormationCustomResourceEvent, Context } from "aws-lambda";
import { Kafka } from "kafkajs";
import { type Config, config } from "#chat/config.ts";
import { grantAppRoleFromSecret } from "#chat/db/app-role.ts";
import { databaseUrl } from "#chat/db/database-url.ts";
import { MIGRATIONS_DIR, migrate } from "#chat/db/migrate.ts";
import { buildKafkaConfig } from "#chat/events/kafka-client.ts";
import { kafkaClientOptions } from "#chat/events/kafka-settings.ts";
import { migrationDecision, migrationsHash } from "./migration-set.ts";

/**
 * Custom resource (Provider onEvent) run on every deploy whose migrations, database or cluster changed: applies
 * pending SQL migrations through the RDS Proxy, then creates the Kafka topic if it is missing (MSK Serverless never
 * auto-creates topics). With DATABASE_APP_SECRET_ARN (the aws data plane), it then creates the functions' role
 * if missing and grants it the rows of every table (layers/chat/db/app-role.ts): the functions connect as that role,
 * the migrations as the owner. A rollback to an older set of migrations does none of it (migration-set.ts). Delete does
 * nothing: the schema and the topic go away with the database and the cluster, or stay with them.
 */

interface Properties {
  Topic?: string;
  Partitions?: string;
  MigrationsHash?: string;
}

export interface OnEventResponse {
  PhysicalResourceId: string;
  Data?: Record<string, string>;
}

const PHYSICAL_ID = "chat-schema";

/** The secret's URL, pointed at DATABASE_HOST (the proxy) and with TLS verification when DATABASE_SSL is on. */
export function clientUrl(url: string, host: string | undefined, ssl: boolean): string {
  const u = new URL(url);
  if (host) u.hostname = host;
  if (ssl && !u.searchParams.has("sslmode")) u.searchParams.set("sslmode", "verify-full");
  return u.toString();
}

// Right after create, the proxy may still be registering its target: connection errors are worth a retry. So is a
// refused password: the owner's secret rotates on its own schedule (at once when rotation is first set up), and
// each retry reads the secret again.
const TRANSIENT =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|timeout|terminated|starting up|no targets|password authentication failed/i;
/**
 * A refused login by SQLSTATE, whatever the wording (RDS Proxy words its own refusals differently): a wrong
 * password (28P01), or a refusal that names credentials (28000; others under that code, a missing role or no
 * pg_hba entry, are a misconfiguration, failed at once).
 */
const transient = (err: unknown, message: string) => {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    TRANSIENT.test(message) || code === "28P01" || (code === "28000" && /credential|password/i.test(message))
  );
};

async function withRetry<T>(
  what: string,
  run: (attempt: number) => Promise<T>,
  deadline: number,
  log = console.warn,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run(attempt);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (!transient(err, message) || Date.now() + 15_000 > deadline) throw err;
      log(JSON.stringify({ level: "WARN", message: `${what} failed, retrying`, attempt, error: message }));
      await new Promise((r) => setTimeout(r, Math.min(2_000 * attempt, 10_000)));
    }
  }
}

export async function ensureTopic(cfg: Config, topic: string, partitions: number): Promise<boolean> {
  if (cfg.KAFKA_BROKERS.length === 0 && !cfg.MSK_CLUSTER_ARN) return false;
  const kafka = new Kafka(
    buildKafkaConfig({
      ...(await kafkaClientOptions(cfg)),
      clientId: `${cfg.KAFKA_CLIENT_ID}-deploy`,
      connectionTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
    }),
  );
  const admin = kafka.admin();
  await admin.connect();
  try {
    // false when it already exists; the replication factor is the cluster's default (MSK Serverless: 3).
    return await admin.createTopics({
      topics: [{ topic, numPartitions: partitions }],
      waitForLeaders: true,
      timeout: 30_000,
    });
  } finally {
    await admin.disconnect();
  }
}

export async function handler(
  event: CloudFormationCustomResourceEvent,
  context?: Context,
): Promise<OnEventResponse> {
  if (event.RequestType === "Delete") return { PhysicalResourceId: event.PhysicalResourceId };
  const props = event.ResourceProperties as unknown as Properties;
  const dir = process.env.MIGRATIONS_DIR ?? MIGRATIONS_DIR;
  if (props.MigrationsHash !== undefined) {
    const decision = migrationDecision(event, migrationsHash(dir));
    if (!decision.migrate) {
      console.log(
        JSON.stringify({ level: "INFO", message: "deploy migration skipped", reason: decision.reason }),
      );
      return { PhysicalResourceId: PHYSICAL_ID, Data: { Applied: "0", TopicCreated: "false" } };
    }
  }
  const deadline = Date.now() + (context?.getRemainingTimeInMillis() ?? 300_000);
  const cfg = config();
  // Read per attempt, past the cache after the first, so a password rotated meanwhile is picked up.
  const url = async (attempt: number) =>
    clientUrl(await databaseUrl(cfg, attempt > 1), process.env.DATABASE_HOST, cfg.DATABASE_SSL);
  const applied = await withRetry("migrate", async (n) => migrate(await url(n), dir), deadline);
  const appSecretArn = cfg.DATABASE_APP_SECRET_ARN;
  const appRole = appSecretArn
    ? await withRetry(
        "grant the application role",
        async (n) => grantAppRoleFromSecret(await url(n), appSecretArn),
        deadline,
      )
    : undefined;
  const created = props.Topic
    ? await withRetry(
        "create topic",
        () => ensureTopic(cfg, props.Topic ?? "", Number(props.Partitions ?? 6)),
        deadline,
      )
    : false;
  console.log(
    JSON.stringify({
      level: "INFO",
      message: "deploy migration done",
      applied,
      topicCreated: created,
      appRole,
    }),
  );
  // Response data is capped at 4 KB: counts, not names.
  return {
    PhysicalResourceId: PHYSICAL_ID,
    Data: {
      Applied: String(applied.length),
      TopicCreated: String(created),
      ...(appRole ? { AppRole: appRole } : {}),
    },
  };
}
