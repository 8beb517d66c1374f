import { type CfnElement, Stack } from "aws-cdk-lib";
import type * as lambda from "aws-cdk-lib/aws-lambda";

/**
 * The cdk-nag finding id for `lambda:InvokeFunction` on `<fn>.Arn:*`: the grant CDK writes so that callers may
 * invoke the function's versions and aliases. It names one function, so acknowledging it allows nothing else.
 */
export function invokeVersionsFinding(fn: lambda.IFunction): string {
  const cfn = fn.node.defaultChild as CfnElement;
  return `AwsSolutions-IAM5[Resource::<${Stack.of(fn).getLogicalId(cfn)}.Arn>:*]`;
}
