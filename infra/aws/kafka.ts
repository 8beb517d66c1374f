import { Aws, Fn } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as msk from "aws-cdk-lib/aws-msk";
import { Construct } from "constructs";
import { physicalName } from "../names.ts";
import type { Network } from "./network.ts";

/** MSK IAM auth listens on 9098. */
export const MSK_IAM_PORT = ec2.Port.tcp(9098);

/**
 * MSK Serverless with IAM auth only. Functions find the brokers with kafka:GetBootstrapBrokers (MSK_CLUSTER_ARN)
 * and sign SASL/OAUTHBEARER tokens with their role, so every permission below is on cluster/topic/group ARNs.
 */
export class Kafka extends Construct {
  readonly clusterArn: string;
  readonly securityGroup: ec2.SecurityGroup;
  private readonly clusterName: string;

  constructor(scope: Construct, id: string, props: { network: Network }) {
    super(scope, id);
    const { network } = props;
    this.securityGroup = new ec2.SecurityGroup(this, "BrokerSg", {
      vpc: network.vpc,
      description: "msk serverless: 9098 from the functions and the event source pollers",
      allowAllOutbound: false,
    });
    this.securityGroup.connections.allowFrom(network.clients.kafka, MSK_IAM_PORT, "functions to brokers");
    // The event source mapping's pollers use this security group: to the brokers, and to the S3 endpoint, where
    // they put a batch the consumer failed on.
    this.securityGroup.connections.allowInternally(MSK_IAM_PORT, "event source pollers to brokers");
    network.endpointSg.connections.allowFrom(
      this.securityGroup,
      ec2.Port.tcp(443),
      "event source pollers to APIs",
    );

    this.clusterName = physicalName(this, 64);
    const cluster = new msk.CfnServerlessCluster(this, "Cluster", {
      clusterName: this.clusterName,
      clientAuthentication: { sasl: { iam: { enabled: true } } },
      vpcConfigs: [
        {
          subnetIds: network.vpc.selectSubnets(network.subnets).subnetIds,
          securityGroups: [this.securityGroup.securityGroupId],
        },
      ],
    });
    this.clusterArn = cluster.attrArn;
  }

  // arn:aws:kafka:region:account:cluster/<name>/<uuid> → .../<kind>/<name>/<uuid>/<resource>
  private arnFor(kind: "topic" | "group", name: string): string {
    const uuid = Fn.select(2, Fn.split("/", this.clusterArn));
    return `arn:${Aws.PARTITION}:kafka:${Aws.REGION}:${Aws.ACCOUNT_ID}:${kind}/${this.clusterName}/${uuid}/${name}`;
  }

  topicArn(topic: string): string {
    return this.arnFor("topic", topic);
  }

  groupArn(group: string): string {
    return this.arnFor("group", group);
  }

  private grant(
    grantee: iam.IGrantable,
    clusterActions: string[],
    resources: Record<string, string[]>,
  ): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["kafka:GetBootstrapBrokers", ...clusterActions],
        resources: [this.clusterArn],
      }),
    );
    for (const [arn, actions] of Object.entries(resources))
      grantee.grantPrincipal.addToPrincipalPolicy(new iam.PolicyStatement({ actions, resources: [arn] }));
  }

  /** The health check's cluster metadata call. */
  grantDescribe(grantee: iam.IGrantable): void {
    this.grant(grantee, ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"], {});
  }

  /** Publish (outbox relay, after-commit fast path). */
  grantProduce(grantee: iam.IGrantable, topic: string): void {
    this.grant(grantee, ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"], {
      [this.topicArn(topic)]: ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"],
    });
  }

  /** The event source mapping consumes with the function's role, in a fixed consumer group. */
  grantConsume(grantee: iam.IGrantable, topic: string, group: string): void {
    this.grant(grantee, ["kafka-cluster:Connect", "kafka-cluster:DescribeClusterDynamicConfiguration"], {
      [this.topicArn(topic)]: ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
      [this.groupArn(group)]: ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"],
    });
  }

  /** Topic creation on deploy (MSK Serverless cannot auto-create topics, and the MSK topic API is Provisioned-only). */
  grantCreateTopic(grantee: iam.IGrantable, topic: string): void {
    this.grant(grantee, ["kafka-cluster:Connect"], {
      [this.topicArn(topic)]: ["kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopic"],
    });
  }
}
