import { App, Validations } from "aws-cdk-lib";
import { Annotations, Match } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";
import { describe, expect, it } from "vitest";
import { EXTERNAL_CONTEXT, synth } from "./synth.ts";

const variants: [string, Record<string, unknown>][] = [
  ["aws + layer", {}],
  ["aws + bundled", { layerMode: "bundled" }],
  [
    "aws + bedrock, multi-AZ, protected, no rotation",
    { responder: "bedrock", dbMultiAz: "true", deletionProtection: "true", dbSecretRotationDays: "0" },
  ],
  ["external", EXTERNAL_CONTEXT],
];

function* walk(node: IConstruct): Generator<IConstruct> {
  yield node;
  for (const child of node.node.children) yield* walk(child);
}

describe.each(variants)("cdk-nag AwsSolutions: %s", (_name, context) => {
  it("has no unacknowledged finding (errors or warnings)", () => {
    const s = synth(context);
    const result = new AwsSolutionsChecks(s.app).validateScope(s.stack);
    const findings = result.violations.map(
      (v) => `${v.ruleName} (${v.severity}): ${JSON.stringify(v.violatingResources)}`,
    );
    expect(findings).toEqual([]);
    expect(Annotations.fromStack(s.stack).findError("*", Match.stringLikeRegexp("AwsSolutions-.*"))).toEqual(
      [],
    );
  });

  it("gives every acknowledgement a reason", () => {
    const s = synth(context);
    const acks = [...walk(s.stack)].flatMap((c) =>
      c.node.metadata
        .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .flatMap((m) =>
          Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({
            id,
            reason,
            at: c.node.path,
          })),
        ),
    );
    expect(acks.length).toBeGreaterThan(0);
    for (const ack of acks) expect(ack.reason.trim().length, `${ack.id} at ${ack.at}`).toBeGreaterThan(30);
  });
});

describe("the app registers cdk-nag", () => {
  it("fails synth on an unacknowledged finding", async () => {
    const { buildApp } = await import("../../infra/app.ts");
    const { Stack } = await import("aws-cdk-lib");
    const sqs = await import("aws-cdk-lib/aws-sqs");
    const app = new App({ context: { "aws:cdk:bundling-stacks": [], stubHandlers: true } });
    buildApp(app);
    new sqs.Queue(new Stack(app, "Bad"), "Queue"); // no DLQ, no SSL enforcement: AwsSolutions-SQS3/SQS4
    expect(() => app.synth()).toThrow(/AwsSolutions-SQS3/);
  });
});
