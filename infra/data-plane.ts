import type * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as logs from "aws-cdk-lib/aws-logs";
import type * as sns from "aws-cdk-lib/aws-sns";
import { Construct, type IConstruct, type IDependable } from "constructs";
import type { Backend } from "#functions/manifest.ts";
import { AwsDataPlane } from "./aws/aws-data-plane.ts";
import type { ChatContext } from "./context.ts";
import { ExternalDataPlane } from "./external-data-plane.ts";
import type { FailedBatches } from "./failed-batches.ts";

/** Where a data-plane client runs: VPC placement, or nothing (external endpoints are reached directly). */
export interface Placement {
  vpc?: ec2.IVpc;
  vpcSubnets?: ec2.SubnetSelection;
  securityGroups?: ec2.ISecurityGroup[];
}

/** Whether a function reaches Postgres, Redis or Kafka, and so needs the data plane's placement. */
export const reachesDataPlane = (uses: readonly Backend[]) => uses.some((u) => u !== "responder");

/** What the stack needs from either variant. */
export interface DataPlaneVariant {
  /** Env vars (names from layers/chat/config.ts) of a client using these backends. Never a password. */
  environmentFor(uses: readonly Backend[]): Record<string, string>;
  /** Where a client of these backends runs: its network reaches them and nothing else. */
  placementFor(uses: readonly Backend[]): Placement;
  /** Env vars of the deploy-time migration: the database as its owner, and the cluster it creates the topic on. */
  readonly migratorEnvironment: Record<string, string>;
  /** Resources that must wait for the deploy-time migration (e.g. what logs in as the role it creates). */
  readonly afterMigrations: IConstruct[];
  /** Resources the deploy-time migration must wait for (e.g. the proxy's target registration). */
  readonly dependables: IDependable[];
  /** What the deploy-time migration runs against: a replaced database or cluster changes it. */
  readonly deployTarget: Record<string, string>;
  /** Grants exactly what these backends need: the database secret, produce or describe on the topic. */
  grantClient(fn: lambda.Function, uses: readonly Backend[]): void;
  grantMigrator(fn: lambda.Function): void;
  /**
   * The event source mapping for a kafkaTopic function, or undefined when this variant has none. A batch the
   * function still fails on after its retries goes to an on-failure bucket (infra/failed-batches.ts).
   */
  addConsumer(
    fn: lambda.Function,
    topic: string,
    group: string,
    batchSize: number,
  ): lambda.EventSourceMapping | undefined;
  /** Where the consumers' failed batches go, once addConsumer made an event source. */
  readonly failedBatches?: FailedBatches;
  /** Alarms on what this variant built (managed resources, the on-failure bucket), to `topic`; after addConsumer. */
  addAlarms(topic: sns.ITopic): void;
}

export interface DataPlaneProps {
  ctx: ChatContext;
  topic: string;
  /** Of the log groups the data plane makes (flow logs, secret rotation), like every other in the stack. */
  logRetention: logs.RetentionDays;
}

/** What the deploy-time migration reaches: the database, and the cluster it creates the topic on (its IAM comes
 * from grantMigrator, not from these). */
export const MIGRATOR_USES: readonly Backend[] = ["postgres", "kafka-produce"];

/**
 * Postgres, Redis and Kafka for the functions, chosen by context `dataPlane`:
 * `aws` builds VPC + RDS/Proxy + ElastiCache Serverless + MSK Serverless; `external` wires given endpoints
 * (LocalStack with the compose services, or bring-your-own).
 */
export class DataPlane extends Construct implements DataPlaneVariant {
  readonly variant: DataPlaneVariant;

  constructor(scope: Construct, id: string, props: DataPlaneProps) {
    super(scope, id);
    const { ctx, topic } = props;
    if (ctx.dataPlane === "aws") this.variant = new AwsDataPlane(this, "Aws", props);
    else {
      if (!ctx.external) throw new Error("dataPlane=external needs its endpoints in context");
      this.variant = new ExternalDataPlane(this, "External", {
        endpoints: ctx.external,
        topic,
        partitions: ctx.kafkaPartitions,
      });
    }
  }

  environmentFor(uses: readonly Backend[]) {
    return this.variant.environmentFor(uses);
  }
  placementFor(uses: readonly Backend[]) {
    return this.variant.placementFor(uses);
  }
  get migratorEnvironment() {
    return this.variant.migratorEnvironment;
  }
  get dependables() {
    return this.variant.dependables;
  }
  get afterMigrations() {
    return this.variant.afterMigrations;
  }
  get deployTarget() {
    return this.variant.deployTarget;
  }
  get failedBatches() {
    return this.variant.failedBatches;
  }
  grantClient(fn: lambda.Function, uses: readonly Backend[]) {
    this.variant.grantClient(fn, uses);
  }
  grantMigrator(fn: lambda.Function) {
    this.variant.grantMigrator(fn);
  }
  addConsumer(fn: lambda.Function, topic: string, group: string, batchSize: number) {
    return this.variant.addConsumer(fn, topic, group, batchSize);
  }
  addAlarms(topic: sns.ITopic) {
    this.variant.addAlarms(topic);
  }
}
