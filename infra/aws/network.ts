import { App, Aws, CfnCondition, Fn, RemovalPolicy, Stack, Token } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as logs from "aws-cdk-lib/aws-logs";
import { RegionInfo } from "aws-cdk-lib/region-info";
import { Construct } from "constructs";

/** What a function in the VPC may reach, each through a security group of its own. */
export type ClientOf = "postgres" | "redis" | "kafka" | "endpoints";

export interface NetworkProps {
  /** Adds the bedrock-runtime endpoint (RESPONDER=bedrock). */
  bedrock: boolean;
  /** Adds the X-Ray endpoint (context `tracing`): the functions' X-Ray daemon sends their segments through it. */
  xray?: boolean;
  /** AZ names to use (context `availabilityZones`); by default the region's first two. */
  availabilityZones?: string[];
  logRetention: logs.RetentionDays;
}

/**
 * Two AZs of private isolated subnets and no NAT gateway: nothing in the VPC needs the internet. The AWS APIs the
 * functions call, and S3 for the MSK event source's failed batches, are reached through interface endpoints instead
 * (see docs/deploy.md for the cost comparison). Functions that reach no backend (the health canary, the OpenAPI document) run outside it.
 */
export class Network extends Construct {
  readonly vpc: ec2.Vpc;
  readonly subnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
  /**
   * The functions' security groups, one per thing a function reaches (each opened by that resource): a function
   * gets only those of what its manifest entry uses, so the public `$default` route cannot reach the database.
   */
  readonly clients: Record<ClientOf, ec2.SecurityGroup>;
  readonly endpointSg: ec2.SecurityGroup;
  readonly secretsManager: ec2.InterfaceVpcEndpoint;
  #s3?: ec2.InterfaceVpcEndpoint;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    // CDK's default flow-log group keeps two years and outlives the stack; this one is like the stack's others.
    const flowLogs = new logs.LogGroup(this, "FlowLogs", {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.vpc = new ec2.Vpc(this, "Vpc", {
      // Not every AZ has RDS Proxy or MSK Serverless (e.g. use1-az3): context availabilityZones picks others.
      ...(props.availabilityZones ? { availabilityZones: props.availabilityZones } : { maxAzs: 2 }),
      natGateways: 0,
      subnetConfiguration: [{ name: "private", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 22 }],
      // Rejected flows only: enough to debug a security group, a fraction of the cost of ALL.
      flowLogs: {
        rejected: {
          trafficType: ec2.FlowLogTrafficType.REJECT,
          destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
        },
      },
    });
    const client = (id: string, description: string) =>
      new ec2.SecurityGroup(this, id, {
        vpc: this.vpc,
        description: `chat functions that use ${description} only`,
        allowAllOutbound: false,
      });
    this.clients = {
      postgres: client("PostgresClientSg", "postgres: egress to the proxy"),
      redis: client("RedisClientSg", "redis: egress to the cache"),
      kafka: client("KafkaClientSg", "kafka: egress to the brokers"),
      endpoints: client("EndpointClientSg", "AWS APIs: egress to the interface endpoints"),
    };
    retireFunctionSg(this, this.vpc);
    this.endpointSg = new ec2.SecurityGroup(this, "EndpointSg", {
      vpc: this.vpc,
      description: "interface endpoints: 443 from the functions and the MSK event source",
      allowAllOutbound: false,
    });

    // Database secret (Powertools getSecret) and its rotation.
    this.secretsManager = this.#endpoint(
      "SecretsManager",
      ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    );
    // kafka:GetBootstrapBrokers, how functions find the MSK Serverless brokers.
    this.#endpoint("Kafka", ec2.InterfaceVpcEndpointAwsService.KAFKA);
    // No Lambda or STS endpoint (each $0.01 per AZ-hour): the MSK event source's pollers need them only in
    // on-demand mode, and they run in provisioned mode (infra/failed-batches.ts); nothing else here calls either.
    if (props.bedrock) this.#endpoint("BedrockRuntime", ec2.InterfaceVpcEndpointAwsService.BEDROCK_RUNTIME);
    if (props.xray) this.#endpoint("XRay", ec2.InterfaceVpcEndpointAwsService.XRAY);
  }

  /**
   * S3, where the MSK event source's pollers write a batch they gave up on (infra/failed-batches.ts); made by the
   * first consumer. An interface endpoint like the others, reached through their security group: a gateway
   * endpoint would need an egress rule to S3's prefix list, whose id only a context lookup gives. With no gateway
   * endpoint, its private DNS answers every resolver in the VPC.
   */
  addS3Endpoint(): ec2.InterfaceVpcEndpoint {
    this.#s3 ??= this.#endpoint("S3", ec2.InterfaceVpcEndpointAwsService.S3, {
      privateDnsOnlyForInboundResolverEndpoint:
        ec2.VpcEndpointPrivateDnsOnlyForInboundResolverEndpoint.ALL_RESOLVERS,
    });
    return this.#s3;
  }

  #endpoint(
    name: string,
    service: ec2.InterfaceVpcEndpointAwsService,
    options: Partial<ec2.InterfaceVpcEndpointOptions> = {},
  ): ec2.InterfaceVpcEndpoint {
    const ep = this.vpc.addInterfaceEndpoint(name, {
      service: endpointService(this, service),
      subnets: this.subnets,
      securityGroups: [this.endpointSg],
      privateDnsEnabled: true,
      open: false, // no blanket VPC-CIDR rule: callers are allowed one by one
      ...options,
    });
    ep.connections.allowDefaultPortFrom(this.clients.endpoints, "functions to AWS APIs");
    return ep;
  }
}

/**
 * A stack in each region, for CDK's name of an endpoint service there. Never synthesized: under `cdk synth` an App
 * would otherwise write itself into cdk.out on exit, next to the real one.
 */
const pinned = new Map<string, Stack>();
const nameIn = (service: ec2.InterfaceVpcEndpointAwsService, region: string): string => {
  const stack = pinned.get(region) ?? new Stack(new App({ autoSynth: false }), "Pinned", { env: { region } });
  pinned.set(region, stack);
  return stack.resolve(service.name) as string;
};

/**
 * An AWS service's endpoint, named as the region deployed to calls it. The stack is environment-agnostic (synth
 * needs no credentials, one template serves every region), so CDK cannot tell the region and names every service
 * `com.amazonaws.<region>.<service>`; but in the China regions (aws-cn, a target partition in cdk.json) S3's and
 * X-Ray's are `cn.com.amazonaws.<region>.<service>`, and a deploy there would fail on an endpoint service that does
 * not exist. CDK knows each region's names (for a stack pinned to one): a condition per region whose name differs.
 */
function endpointService(
  scope: Construct,
  service: ec2.InterfaceVpcEndpointAwsService,
): ec2.IInterfaceVpcEndpointService {
  const stack = Stack.of(scope);
  if (!Token.isUnresolved(stack.region)) return service;
  let name = service.name;
  // only the China regions name services otherwise (aws-cn is the one other partition docs/deploy.md supports)
  for (const { name: region } of RegionInfo.regions.filter((r) => r.partition === "aws-cn")) {
    const there = nameIn(service, region);
    if (there === `com.amazonaws.${region}.${service.shortName}`) continue;
    const id = `InRegion${region.replace(/-/g, "")}`;
    const condition =
      (stack.node.tryFindChild(id) as CfnCondition | undefined) ??
      new CfnCondition(stack, id, { expression: Fn.conditionEquals(Aws.REGION, region) });
    name = Fn.conditionIf(condition.logicalId, there, name).toString();
  }
  return { name, port: service.port, privateDnsDefault: service.privateDnsDefault };
}

/**
 * The group every function had before the client groups (bug 225), kept as it was deployed, attached to nothing
 * (bug 246). Removed in the deploy that moves the functions off it, CloudFormation would delete it in that deploy's
 * cleanup, while Lambda's network interfaces still hold it (Lambda deletes them later, in its own time): the
 * delete fails (DependencyViolation) and the group is left outside the stack, in the VPC, whose delete it then
 * blocks. Its logical id and properties stay the deployed ones (a new description would replace it); delete it
 * in a later release, once `aws ec2 describe-network-interfaces --filters Name=group-id,Values=<id>` is empty.
 */
function retireFunctionSg(network: Construct, vpc: ec2.IVpc): void {
  // Construct + "Resource": the path, and so the logical id, of the ec2.SecurityGroup it was.
  new ec2.CfnSecurityGroup(new Construct(network, "FunctionSg"), "Resource", {
    vpcId: vpc.vpcId,
    groupDescription: "chat functions: egress to proxy, cache, brokers and endpoints only",
  });
}
