import { App, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
import { describe, expect, it } from "vitest";
import { ExecutionRole } from "../../infra/execution-role.ts";

/** A role in a bare stack, with a log group of its own. */
function role() {
  const stack = new Stack(new App(), "Roles");
  const logGroup = new logs.LogGroup(stack, "Logs");
  return { stack, role: new ExecutionRole(stack, "Role", { logGroup, inVpc: false }) };
}

describe("a function's execution role (infra/execution-role.ts)", () => {
  // A managed policy its construct adds unseen would bring back statements on `*` (logs in every group, or more).
  it("refuses a managed policy it was not built for, naming it", () => {
    const { role: r } = role();
    expect(() =>
      r.addManagedPolicy(
        iam.ManagedPolicy.fromAwsManagedPolicyName("service-role/AWSLambdaBasicExecutionRole"),
      ),
    ).toThrow(/AWSLambdaBasicExecutionRole's statements inline/);
  });

  it("takes the MSK event source's policy in name only: no managed policy on the role", () => {
    const { stack, role: r } = role();
    r.addManagedPolicy(iam.ManagedPolicy.fromAwsManagedPolicyName("service-role/AWSLambdaMSKExecutionRole"));
    const roles = Object.values(Template.fromStack(stack).findResources("AWS::IAM::Role"));
    expect(roles.map((x) => x.Properties?.ManagedPolicyArns)).toEqual([undefined]);
  });
});
