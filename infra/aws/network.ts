import * as ec2 from "aws-cdk-lib/aws-ec2";
import { Construct } from "constructs";

export interface NetworkProps {
  /** Adds the bedrock-runtime endpoint (RESPONDER=bedrock). */
  bedrock: boolean;
}

/**
 * Two AZs of private isolated subnets and no NAT gateway: nothing in the VPC needs the internet. The AWS APIs the
 * functions and the MSK event source call are reached through interface endpoints instead (see docs/deploy.md for
 * the cost comparison). The health canary, which calls the public API URL, runs outside the VPC.
 */
export class Network extends Construct {
  readonly vpc: ec2.Vpc;
  readonly subnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
  /** Every function in the VPC; egress only to the data plane and the endpoints (opened by each resource). */
  readonly functionSg: ec2.SecurityGroup;
  readonly endpointSg: ec2.SecurityGroup;
  readonly secretsManager: ec2.InterfaceVpcEndpoint;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    this.vpc = new ec2.Vpc(this, "Vpc", {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: "private", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 22 }],
      // Rejected flows only: enough to debug a security group, a fraction of the cost of ALL.
      flowLogs: { rejected: { trafficType: ec2.FlowLogTrafficType.REJECT } },
    });
    this.functionSg = new ec2.SecurityGroup(this, "FunctionSg", {
      vpc: this.vpc,
      description: "chat functions: egress to proxy, cache, brokers and endpoints only",
      allowAllOutbound: false,
    });
    this.endpointSg = new ec2.SecurityGroup(this, "EndpointSg", {
      vpc: this.vpc,
      description: "interface endpoints: 443 from the functions and the MSK event source",
      allowAllOutbound: false,
    });

    const endpoint = (name: string, service: ec2.InterfaceVpcEndpointAwsService) => {
      const ep = this.vpc.addInterfaceEndpoint(name, {
        service,
        subnets: this.subnets,
        securityGroups: [this.endpointSg],
        privateDnsEnabled: true,
        open: false, // no blanket VPC-CIDR rule: callers are allowed one by one
      });
      ep.connections.allowDefaultPortFrom(this.functionSg, "functions to AWS APIs");
      return ep;
    };
    // Database secret (Powertools getSecret) and its rotation.
    this.secretsManager = endpoint("SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER);
    // kafka:GetBootstrapBrokers, how functions find the MSK Serverless brokers.
    endpoint("Kafka", ec2.InterfaceVpcEndpointAwsService.KAFKA);
    // The MSK event source mapping's pollers call Lambda and STS from the cluster's subnets.
    endpoint("Lambda", ec2.InterfaceVpcEndpointAwsService.LAMBDA);
    endpoint("Sts", ec2.InterfaceVpcEndpointAwsService.STS);
    if (props.bedrock) endpoint("BedrockRuntime", ec2.InterfaceVpcEndpointAwsService.BEDROCK_RUNTIME);
  }
}
