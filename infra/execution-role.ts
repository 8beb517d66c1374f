import { Validations } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as logs from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";

/** Lambda's network interfaces of a function in a VPC: AWSLambdaVPCAccessExecutionRole's actions, without its logs. */
export const ENI_ACTIONS = [
  "ec2:CreateNetworkInterface",
  "ec2:DescribeNetworkInterfaces",
  "ec2:DescribeSubnets",
  "ec2:DeleteNetworkInterface",
  "ec2:AssignPrivateIpAddresses",
  "ec2:UnassignPrivateIpAddresses",
];

/** Managed policies whose statements the stack grants inline instead: ManagedKafkaEventSource adds this one. */
const INLINED = [/:policy\/service-role\/AWSLambdaMSKExecutionRole$/];

/**
 * A function's execution role, with inline statements only. AWS's managed Lambda policies (basic, VPC access, MSK)
 * allow logs:CreateLogGroup, CreateLogStream and PutLogEvents on `*`: every function could write into any log
 * group of the account, another function's (its metric filters and alarms read it) or CloudTrail's. This role
 * writes to its function's own group only.
 */
export class ExecutionRole extends iam.Role {
  constructor(scope: Construct, id: string, props: { logGroup: logs.ILogGroup; inVpc: boolean }) {
    super(scope, id, { assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com") });
    props.logGroup.grantWrite(this);
    if (props.inVpc) this.addToPolicy(new iam.PolicyStatement({ actions: ENI_ACTIONS, resources: ["*"] }));
  }

  /** Refuses a managed policy it was not built for: its `*` statements would come back unseen. */
  override addManagedPolicy(policy: iam.IManagedPolicy): void {
    if (INLINED.some((name) => name.test(policy.managedPolicyArn))) return;
    throw new Error(`${this.node.path}: grant ${policy.managedPolicyArn}'s statements inline, on ARNs`);
  }

  /** Acknowledges the `*` resource of the ENI actions (and of X-Ray's, with tracing) with its reasons. */
  acknowledgeAnyResource(reasons: string[]): void {
    if (reasons.length)
      Validations.of(this).acknowledge({ id: "AwsSolutions-IAM5[Resource::*]", reason: reasons.join(" ") });
  }
}
