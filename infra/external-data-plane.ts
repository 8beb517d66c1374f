import { createHash } from "node:crypto";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as sources from "aws-cdk-lib/aws-lambda-event-sources";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import type * as sns from "aws-cdk-lib/aws-sns";
import { Construct, type IConstruct, type IDependable } from "constructs";
import type { Backend } from "#functions/manifest.ts";
import { type BackendEnvironment, environmentOf } from "./backend-environment.ts";
import type { ExternalEndpoints } from "./context.ts";
import { type DataPlaneVariant, MIGRATOR_USES, type Placement } from "./data-plane.ts";
import { FailedBatches } from "./failed-batches.ts";

/**
 * The `external` variant: endpoints that already exist (LocalStack + docker compose, or bring-your-own). Functions
 * run outside any VPC, so the endpoints must be reachable from Lambda (or from LocalStack's Lambda containers).
 */
export class ExternalDataPlane extends Construct implements DataPlaneVariant {
  readonly dependables: IDependable[] = [];
  readonly afterMigrations: IConstruct[] = [];
  readonly deployTarget: Record<string, string>;
  /** The consumers' on-failure bucket, made with the first event source. */
  failedBatches?: FailedBatches;
  private readonly secret?: secretsmanager.ISecret;
  private readonly kafkaSecret?: secretsmanager.ISecret;
  private readonly redisSecret?: secretsmanager.ISecret;
  private readonly endpoints: ExternalEndpoints;
  private readonly partitions: number;
  private readonly env: BackendEnvironment;

  constructor(
    scope: Construct,
    id: string,
    props: { endpoints: ExternalEndpoints; topic: string; partitions: number },
  ) {
    super(scope, id);
    const e = props.endpoints;
    this.endpoints = e;
    this.partitions = props.partitions;
    if (e.databaseSecretArn)
      this.secret = secretsmanager.Secret.fromSecretCompleteArn(this, "DatabaseSecret", e.databaseSecretArn);
    if (e.redisSecretArn)
      this.redisSecret = secretsmanager.Secret.fromSecretCompleteArn(this, "RedisSecret", e.redisSecretArn);
    // One listener, one protocol: the producers authenticate as the event source does (SASL/SCRAM-512).
    if (e.kafkaBrokers.length && e.kafkaSecretArn)
      this.kafkaSecret = secretsmanager.Secret.fromSecretCompleteArn(this, "KafkaSecret", e.kafkaSecretArn);
    this.env = {
      postgres: {
        ...(e.databaseSecretArn ? { DATABASE_SECRET_ARN: e.databaseSecretArn } : {}),
        // Only for local tools (sam local, LocalStack): the URL, password included, sits in the template.
        ...(e.databaseUrl ? { DATABASE_URL: e.databaseUrl } : {}),
        DATABASE_SSL: String(e.databaseSsl),
      },
      // The secret's ARN, never its value (a URL with credentials is refused in context.ts).
      redis: e.redisUrl
        ? {
            REDIS_URL: e.redisUrl,
            REDIS_TLS: String(e.redisTls),
            ...(this.redisSecret ? { REDIS_SECRET_ARN: this.redisSecret.secretArn } : {}),
          }
        : {},
      kafka: {
        ...(e.kafkaBrokers.length
          ? { KAFKA_BROKERS: e.kafkaBrokers.join(","), KAFKA_SSL: String(e.kafkaSsl) }
          : {}),
        ...(this.kafkaSecret
          ? { KAFKA_AUTH: "scram-sha-512", KAFKA_SECRET_ARN: this.kafkaSecret.secretArn }
          : {}),
        KAFKA_TOPIC: props.topic,
      },
    };
    // Pointing the stack at another database or cluster re-runs the migrations (a URL only by its hash: it
    // holds a password).
    const urlHash = createHash("sha256")
      .update(e.databaseUrl ?? "")
      .digest("hex")
      .slice(0, 16);
    this.deployTarget = {
      Database: e.databaseSecretArn ?? `url:${urlHash}`,
      KafkaCluster: e.kafkaBrokers.join(","),
    };
  }

  environmentFor(uses: readonly Backend[]): Record<string, string> {
    return environmentOf(this.env, uses);
  }

  placementFor(_uses: readonly Backend[]): Placement {
    return {};
  }

  // The given database has one user, the functions' and the migrations'.
  get migratorEnvironment(): Record<string, string> {
    return environmentOf(this.env, MIGRATOR_USES);
  }

  grantClient(fn: lambda.Function, uses: readonly Backend[]): void {
    if (uses.includes("postgres")) this.secret?.grantRead(fn);
    if (uses.includes("redis")) this.redisSecret?.grantRead(fn);
    if (uses.includes("kafka-produce") || uses.includes("kafka-describe")) this.kafkaSecret?.grantRead(fn);
  }

  grantMigrator(fn: lambda.Function): void {
    this.secret?.grantRead(fn);
    this.kafkaSecret?.grantRead(fn);
  }

  /**
   * Self-managed Kafka needs SASL/SCRAM credentials over the internet; without them, no event source. The
   * producers use the same secret (KAFKA_AUTH=scram-sha-512), since a broker listener speaks one protocol.
   */
  addConsumer(
    fn: lambda.Function,
    topic: string,
    group: string,
    batchSize: number,
  ): lambda.EventSourceMapping | undefined {
    const { kafkaBrokers, kafkaSecretArn } = this.endpoints;
    if (kafkaBrokers.length === 0 || !kafkaSecretArn) return undefined;
    this.failedBatches ??= new FailedBatches(this, "FailedBatches");
    fn.addEventSource(
      new sources.SelfManagedKafkaEventSource({
        bootstrapServers: kafkaBrokers,
        topic,
        consumerGroupId: group,
        secret:
          this.kafkaSecret ??
          secretsmanager.Secret.fromSecretCompleteArn(this, "KafkaSecret", kafkaSecretArn),
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize,
        ...this.failedBatches.eventSourceOptions(this.partitions),
      }),
    );
    return fn.node.children.find((c) => c instanceof lambda.EventSourceMapping) as lambda.EventSourceMapping;
  }

  // Nothing managed to watch: the endpoints are someone else's. Only the on-failure bucket, if there is one.
  addAlarms(topic: sns.ITopic): void {
    this.failedBatches?.alarmOnArrival(topic);
  }
}
