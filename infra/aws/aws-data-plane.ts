import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as sources from "aws-cdk-lib/aws-lambda-event-sources";
import type * as sns from "aws-cdk-lib/aws-sns";
import { Construct, type IConstruct, type IDependable } from "constructs";
import type { Backend } from "#functions/manifest.ts";
import { type BackendEnvironment, environmentOf } from "../backend-environment.ts";
import { type DataPlaneProps, type DataPlaneVariant, MIGRATOR_USES, type Placement } from "../data-plane.ts";
import { FailedBatches } from "../failed-batches.ts";
import { Cache } from "./cache.ts";
import { DataPlaneAlarms } from "./data-plane-alarms.ts";
import { Database } from "./database.ts";
import { Kafka } from "./kafka.ts";
import { Network } from "./network.ts";

/** The `aws` variant: everything private in one VPC, each part reachable only from its clients' security group. */
export class AwsDataPlane extends Construct implements DataPlaneVariant {
  readonly dependables: IDependable[];
  readonly afterMigrations: IConstruct[];
  readonly deployTarget: Record<string, string>;
  readonly migratorEnvironment: Record<string, string>;
  readonly network: Network;
  readonly database: Database;
  readonly kafka: Kafka;
  readonly cache: Cache;
  /** The consumers' on-failure bucket, made with the first event source. */
  failedBatches?: FailedBatches;
  private readonly topic: string;
  private readonly env: BackendEnvironment;
  private readonly ctx: DataPlaneProps["ctx"];

  constructor(scope: Construct, id: string, props: DataPlaneProps) {
    super(scope, id);
    const { ctx, topic, logRetention } = props;
    this.topic = topic;
    this.ctx = ctx;
    this.network = new Network(this, "Network", {
      bedrock: ctx.responder === "bedrock",
      xray: ctx.tracing,
      availabilityZones: ctx.availabilityZones,
      logRetention,
    });
    this.database = new Database(this, "Database", { network: this.network, ctx });
    const cache = new Cache(this, "Cache", { network: this.network });
    this.cache = cache;
    this.kafka = new Kafka(this, "Kafka", { network: this.network });

    this.env = {
      postgres: {
        DATABASE_SECRET_ARN: this.database.appSecret.secretArn,
        // The secret's host is the instance (it is attached for rotation); clients go through the proxy.
        DATABASE_HOST: this.database.proxy.endpoint,
        DATABASE_SSL: "true",
        DATABASE_PROXY: "true",
      },
      redis: { REDIS_URL: cache.url, REDIS_TLS: "true" },
      kafka: {
        MSK_CLUSTER_ARN: this.kafka.clusterArn,
        KAFKA_AUTH: "msk-iam",
        KAFKA_SSL: "true",
        KAFKA_TOPIC: topic,
      },
    };
    // The migrations connect as the owner and create the functions' role from its secret.
    this.migratorEnvironment = {
      ...environmentOf(this.env, MIGRATOR_USES),
      DATABASE_SECRET_ARN: this.database.secret.secretArn,
      DATABASE_APP_SECRET_ARN: this.database.appSecret.secretArn,
    };
    // A replacement (new instance or cluster) changes its ARN: the migrations then run again, topic and role
    // included; so does a new application secret.
    this.deployTarget = {
      Database: this.database.instance.instanceArn,
      KafkaCluster: this.kafka.clusterArn,
      AppRoleSecret: this.database.appSecret.secretArn,
    };
    // The proxy's and the cache's groups hold the rules admitting the client groups (bug 245): a function moved
    // onto a new client group by a deploy must not serve from it before the rule exists.
    this.dependables = [
      this.network,
      this.database.proxy,
      ...this.database.proxy.connections.securityGroups,
      cache.securityGroup,
      this.kafka,
    ];
    // A rotation's first run is at once: the application role's logs in as that role, which the migrations
    // create; the owner's would change the password the migrations are connecting with.
    this.afterMigrations = [this.database.appSecretRotation, this.database.masterSecretRotation].filter(
      (r) => r !== undefined,
    );
  }

  environmentFor(uses: readonly Backend[]): Record<string, string> {
    return environmentOf(this.env, uses);
  }

  /**
   * The security groups of what `uses` reaches: the AWS APIs (interface endpoints) for the database secret, the
   * brokers' look-up, Bedrock, and X-Ray's segments when tracing is on.
   */
  placementFor(uses: readonly Backend[]): Placement {
    const { clients } = this.network;
    const kafka = uses.includes("kafka-produce") || uses.includes("kafka-describe");
    const apis = uses.includes("postgres") || kafka || uses.includes("responder") || this.ctx.tracing;
    const groups = [
      ...(uses.includes("postgres") ? [clients.postgres] : []),
      ...(uses.includes("redis") ? [clients.redis] : []),
      ...(kafka ? [clients.kafka] : []),
      ...(apis ? [clients.endpoints] : []),
    ];
    return { vpc: this.network.vpc, vpcSubnets: this.network.subnets, securityGroups: groups };
  }

  // Redis needs no grant: the cache is reached through its security group alone.
  grantClient(fn: lambda.Function, uses: readonly Backend[]): void {
    if (uses.includes("postgres")) this.database.appSecret.grantRead(fn);
    if (uses.includes("kafka-produce")) this.kafka.grantProduce(fn, this.topic);
    else if (uses.includes("kafka-describe")) this.kafka.grantDescribe(fn);
  }

  grantMigrator(fn: lambda.Function): void {
    this.database.secret.grantRead(fn);
    this.database.appSecret.grantRead(fn);
    this.kafka.grantCreateTopic(fn, this.topic);
  }

  addConsumer(
    fn: lambda.Function,
    topic: string,
    group: string,
    batchSize: number,
  ): lambda.EventSourceMapping {
    this.kafka.grantConsume(fn, topic, group);
    // The pollers run in the cluster's subnets, with no route out: they reach the bucket through an endpoint.
    this.network.addS3Endpoint();
    this.failedBatches ??= new FailedBatches(this, "FailedBatches");
    fn.addEventSource(
      new sources.ManagedKafkaEventSource({
        clusterArn: this.kafka.clusterArn,
        topic,
        consumerGroupId: group,
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize,
        ...this.failedBatches.eventSourceOptions(this.ctx.kafkaPartitions),
      }),
    );
    // ManagedKafkaEventSource adds AWSLambdaMSKExecutionRole, which the role takes in name only (its logs on `*`;
    // infra/execution-role.ts): what the pollers need of it, inline. MSK Serverless answers DescribeClusterV2 only
    // (CDK's own statement has DescribeCluster); the ENI actions come with the function's VPC placement.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ["kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"],
        resources: [this.kafka.clusterArn],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ["ec2:DescribeVpcs", "ec2:DescribeSecurityGroups"],
        resources: ["*"],
      }),
    );
    const mapping = fn.node.children.find((c) => c instanceof lambda.EventSourceMapping);
    if (!mapping) throw new Error(`no event source mapping was created for ${fn.node.path}`);
    return mapping as lambda.EventSourceMapping;
  }

  addAlarms(topic: sns.ITopic): void {
    new DataPlaneAlarms(this, "Alarms", {
      topic,
      database: this.database,
      dbInstanceType: this.ctx.dbInstanceType,
      cacheName: this.cache.name,
    });
    this.failedBatches?.alarmOnArrival(topic);
  }
}
