import * as lambda from "aws-cdk-lib/aws-lambda";
import * as sources from "aws-cdk-lib/aws-lambda-event-sources";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct, type IDependable } from "constructs";
import type { ExternalEndpoints } from "./context.ts";
import type { DataPlaneVariant, Placement } from "./data-plane.ts";

/**
 * The `external` variant: endpoints that already exist (LocalStack + docker compose, or bring-your-own). Functions
 * run outside any VPC, so the endpoints must be reachable from Lambda (or from LocalStack's Lambda containers).
 */
export class ExternalDataPlane extends Construct implements DataPlaneVariant {
  readonly environment: Record<string, string>;
  readonly placement: Placement = {};
  readonly dependables: IDependable[] = [];
  private readonly secret?: secretsmanager.ISecret;
  private readonly kafkaSecret?: secretsmanager.ISecret;
  private readonly endpoints: ExternalEndpoints;

  constructor(scope: Construct, id: string, props: { endpoints: ExternalEndpoints; topic: string }) {
    super(scope, id);
    const e = props.endpoints;
    this.endpoints = e;
    if (e.databaseSecretArn)
      this.secret = secretsmanager.Secret.fromSecretCompleteArn(this, "DatabaseSecret", e.databaseSecretArn);
    // One listener, one protocol: the producers authenticate as the event source does (SASL/SCRAM-512).
    if (e.kafkaBrokers.length && e.kafkaSecretArn)
      this.kafkaSecret = secretsmanager.Secret.fromSecretCompleteArn(this, "KafkaSecret", e.kafkaSecretArn);
    this.environment = {
      ...(e.databaseSecretArn ? { DATABASE_SECRET_ARN: e.databaseSecretArn } : {}),
      // Only for local tools (sam local, LocalStack): the URL, password included, sits in the template.
      ...(e.databaseUrl ? { DATABASE_URL: e.databaseUrl } : {}),
      DATABASE_SSL: String(e.databaseSsl),
      ...(e.redisUrl ? { REDIS_URL: e.redisUrl, REDIS_TLS: String(e.redisTls) } : {}),
      ...(e.kafkaBrokers.length
        ? { KAFKA_BROKERS: e.kafkaBrokers.join(","), KAFKA_SSL: String(e.kafkaSsl) }
        : {}),
      ...(this.kafkaSecret
        ? { KAFKA_AUTH: "scram-sha-512", KAFKA_SECRET_ARN: this.kafkaSecret.secretArn }
        : {}),
      KAFKA_TOPIC: props.topic,
    };
  }

  grantClient(fn: lambda.Function): void {
    this.secret?.grantRead(fn);
    this.kafkaSecret?.grantRead(fn);
  }

  grantMigrator(fn: lambda.Function): void {
    this.secret?.grantRead(fn);
    this.kafkaSecret?.grantRead(fn);
  }

  /**
   * Self-managed Kafka needs SASL/SCRAM credentials over the internet; without them, no event source. The
   * producers use the same secret (KAFKA_AUTH=scram-sha-512), since a broker listener speaks one protocol.
   */
  addConsumer(fn: lambda.Function, topic: string, group: string): lambda.EventSourceMapping | undefined {
    const { kafkaBrokers, kafkaSecretArn } = this.endpoints;
    if (kafkaBrokers.length === 0 || !kafkaSecretArn) return undefined;
    fn.addEventSource(
      new sources.SelfManagedKafkaEventSource({
        bootstrapServers: kafkaBrokers,
        topic,
        consumerGroupId: group,
        secret:
          this.kafkaSecret ??
          secretsmanager.Secret.fromSecretCompleteArn(this, "KafkaSecret", kafkaSecretArn),
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: 100,
      }),
    );
    return fn.node.children.find((c) => c instanceof lambda.EventSourceMapping) as lambda.EventSourceMapping;
  }
}
