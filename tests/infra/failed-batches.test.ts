import { readFileSync } from "node:fs";
import type { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { describe, expect, it } from "vitest";
import { EXTERNAL_CONTEXT, functionLogicalId, resourcesOf, type Synth, synth } from "./synth.ts";

const KAFKA_SECRET = "arn:aws:secretsmanager:us-east-1:000000000000:secret:kafka-AbCdEf";
const variants: [string, Synth][] = [
  ["aws (MSK)", synth()],
  ["external (self-managed Kafka)", synth({ ...EXTERNAL_CONTEXT, kafkaSecretArn: KAFKA_SECRET })],
];

const onlyEntry = (template: Template, type: string) => {
  const entries = Object.entries(resourcesOf(template, type));
  expect(entries, type).toHaveLength(1);
  return entries[0] as [string, { Properties?: Record<string, unknown>; DeletionPolicy?: string }];
};

type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown };
/** The statements of the policies attached to this function's role. */
function statementsOf(s: Synth, name: string): Statement[] {
  const fn = resourcesOf(s.template, "AWS::Lambda::Function")[functionLogicalId(s, name)];
  const role = (fn?.Properties?.Role as { "Fn::GetAtt": string[] } | undefined)?.["Fn::GetAtt"][0];
  expect(role, name).toBeDefined();
  return Object.values(resourcesOf(s.template, "AWS::IAM::Policy"))
    .filter((p) => JSON.stringify(p.Properties?.Roles).includes(`"${role}"`))
    .flatMap(
      (p) => (p.Properties?.PolicyDocument as { Statement: Statement[] } | undefined)?.Statement ?? [],
    );
}

describe.each(variants)("events-consumer's on-failure destination: %s", (_name, s) => {
  const [bucketId, bucket] = onlyEntry(s.template, "AWS::S3::Bucket");
  const bucketArn = { "Fn::GetAtt": [bucketId, "Arn"] };

  it("sends a batch still failing after 10 retries (bisected first) to the bucket, with provisioned pollers", () => {
    const [, mapping] = onlyEntry(s.template, "AWS::Lambda::EventSourceMapping");
    expect(mapping.Properties).toMatchObject({
      FunctionName: { Ref: functionLogicalId(s, "events-consumer") },
      DestinationConfig: { OnFailure: { Destination: bucketArn } },
      MaximumRetryAttempts: 10,
      BisectBatchOnFunctionError: true,
      // retries and bisection exist only in provisioned mode; 6 partitions, 5 invocations per poller
      ProvisionedPollerConfig: { MinimumPollers: 1, MaximumPollers: 2 },
    });
    // records never expire by age: a backlog after an outage is read, not sent to the bucket unread
    expect(mapping.Properties?.MaximumRecordAgeInSeconds).toBeUndefined();
  });

  it("keeps the bucket private, encrypted, TLS-only and versioned, for as long as the consumer remembers ids", () => {
    expect(bucket.Properties).toMatchObject({
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      OwnershipControls: { Rules: [{ ObjectOwnership: "BucketOwnerEnforced" }] },
      VersioningConfiguration: { Status: "Enabled" },
      // CONSUMED_EVENTS_RETENTION_HOURS (336) / 24
      LifecycleConfiguration: {
        Rules: [expect.objectContaining({ ExpirationInDays: 14, Status: "Enabled" })],
      },
    });
    // a replayed (deleted) batch's old version, message text included, goes too, well within those 14 days
    const lifecycle = bucket.Properties?.LifecycleConfiguration as { Rules?: Record<string, unknown>[] };
    const [rule] = lifecycle?.Rules ?? [];
    expect(rule?.NoncurrentVersionExpiration).toEqual({ NoncurrentDays: 1 });
    expect(bucket.DeletionPolicy).toBe("Retain");
    const [, policy] = onlyEntry(s.template, "AWS::S3::BucketPolicy");
    expect(policy.Properties).toMatchObject({
      Bucket: { Ref: bucketId },
      PolicyDocument: {
        Statement: [
          expect.objectContaining({
            Effect: "Deny",
            Action: "s3:*",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        ],
      },
    });
  });

  it("README and deploy.md say how long a failed batch's text can stay: up to its expiry, then a day as an old version", () => {
    const lifecycle = bucket.Properties?.LifecycleConfiguration as {
      Rules: { ExpirationInDays: number; NoncurrentVersionExpiration: { NoncurrentDays: number } }[];
    };
    const [rule] = lifecycle.Rules;
    // S3 rounds each lifecycle date up to the next midnight UTC: the expiry makes the object an old version (the
    // bucket is versioned), which goes NoncurrentDays after that midnight: 14 + 1 + up to a day of rounding.
    const longest =
      (rule?.ExpirationInDays ?? 0) + (rule?.NoncurrentVersionExpiration.NoncurrentDays ?? 0) + 1;
    const doc = (path: string) => readFileSync(new URL(path, import.meta.url), "utf8").replace(/\s+/g, " ");
    expect(doc("../../README.md")).toContain(`in the on-failure bucket up to ${longest} days`);
    expect(doc("../../docs/deploy.md")).toContain(`gone within ${longest} days`);
  });

  it("lets the consumer's role put objects in this bucket of this account and list it, nothing more", () => {
    const s3 = statementsOf(s, "events-consumer").filter((st) =>
      [st.Action].flat().some((a) => a.startsWith("s3:")),
    );
    const inThisAccount = { StringEquals: { "s3:ResourceAccount": { Ref: "AWS::AccountId" } } };
    expect(s3).toEqual([
      {
        Effect: "Allow",
        Action: "s3:PutObject",
        Resource: { "Fn::Join": ["", [bucketArn, "/*"]] },
        Condition: inThisAccount,
      },
      { Effect: "Allow", Action: "s3:ListBucket", Resource: bucketArn, Condition: inThisAccount },
    ]);
    // no other function may touch S3 at all
    const others = Object.values(resourcesOf(s.template, "AWS::IAM::Policy"))
      .filter((p) => !JSON.stringify(p.Properties?.Roles).includes("EventsConsumer"))
      .map((p) => JSON.stringify(p.Properties?.PolicyDocument));
    for (const doc of others) expect(doc).not.toMatch(/"s3:/);
  });

  it("alarms on any object arriving (the bucket's PutRequests request metric) to the health alarms' topic", () => {
    const [topicId] = onlyEntry(s.template, "AWS::SNS::Topic");
    const filter = (bucket.Properties?.MetricsConfigurations as { Id: string }[] | undefined)?.[0]?.Id;
    expect(filter).toBe("FailedBatches");
    const alarms = Object.values(resourcesOf(s.template, "AWS::CloudWatch::Alarm"))
      .map((a) => a.Properties ?? {})
      .filter((a) => a.MetricName === "PutRequests");
    expect(alarms).toHaveLength(1);
    expect(alarms[0]).toMatchObject({
      Namespace: "AWS/S3",
      Dimensions: [
        { Name: "BucketName", Value: { Ref: bucketId } },
        { Name: "FilterId", Value: filter },
      ],
      Statistic: "Sum",
      Period: 300,
      EvaluationPeriods: 1,
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      TreatMissingData: "notBreaching",
      AlarmActions: [{ Ref: topicId }],
      OKActions: [{ Ref: topicId }],
    });
    expect(String(alarms[0]?.AlarmDescription)).toMatch(/after 10 retries .*replay/);
  });

  it("names the bucket in the stack's outputs, for the operator who replays a batch", () => {
    s.template.hasOutput("FailedBatchesBucket", { Value: { Ref: bucketId } });
  });

  it("passes cdk-nag (the bucket's and the grant's acknowledgements included)", () => {
    const result = new AwsSolutionsChecks(s.app).validateScope(s.stack);
    expect(result.violations.map((v) => `${v.ruleName}: ${JSON.stringify(v.violatingResources)}`)).toEqual(
      [],
    );
  });
});

describe("aws: the MSK pollers' way to the bucket", () => {
  const s = synth();
  const groups = resourcesOf(s.template, "AWS::EC2::SecurityGroup");
  const sgId = (description: RegExp) =>
    Object.entries(groups).find(([, g]) => description.test(String(g.Properties?.GroupDescription)))?.[0];

  it("is an S3 interface endpoint in the endpoints' security group, with private DNS for every resolver", () => {
    const endpoints = Object.values(resourcesOf(s.template, "AWS::EC2::VPCEndpoint")).filter((e) =>
      // In the China regions its name is another (cn.com.amazonaws.…): a condition picks it (portability.test.ts).
      JSON.stringify(e.Properties?.ServiceName).includes('".s3"]]}'),
    );
    expect(endpoints).toHaveLength(1);
    expect(endpoints[0]?.Properties).toMatchObject({
      VpcEndpointType: "Interface",
      PrivateDnsEnabled: true,
      DnsOptions: { PrivateDnsOnlyForInboundResolverEndpoint: "AllResolvers" },
      SecurityGroupIds: [{ "Fn::GetAtt": [sgId(/^interface endpoints/), "GroupId"] }],
    });
  });

  it("which admits the pollers (the cluster's security group) on 443", () => {
    const brokers = sgId(/^msk serverless/);
    const endpointSg = sgId(/^interface endpoints/);
    const ingress = Object.values(resourcesOf(s.template, "AWS::EC2::SecurityGroupIngress")).map(
      (r) => r.Properties ?? {},
    );
    expect(ingress).toContainEqual(
      expect.objectContaining({
        GroupId: { "Fn::GetAtt": [endpointSg, "GroupId"] },
        SourceSecurityGroupId: { "Fn::GetAtt": [brokers, "GroupId"] },
        FromPort: 443,
        ToPort: 443,
      }),
    );
  });

  it("sizes the pollers to the topic's partitions", () => {
    const big = synth({ kafkaPartitions: "24" });
    const [mapping] = Object.values(resourcesOf(big.template, "AWS::Lambda::EventSourceMapping"));
    expect(mapping?.Properties?.ProvisionedPollerConfig).toEqual({ MinimumPollers: 1, MaximumPollers: 5 });
  });
});

describe("external data plane without Kafka credentials", () => {
  it("has no event source, so no bucket and no alarm on one", () => {
    const s = synth(EXTERNAL_CONTEXT);
    expect(resourcesOf(s.template, "AWS::Lambda::EventSourceMapping")).toEqual({});
    expect(resourcesOf(s.template, "AWS::S3::Bucket")).toEqual({});
    const metrics = Object.values(resourcesOf(s.template, "AWS::CloudWatch::Alarm")).map(
      (a) => a.Properties?.MetricName,
    );
    expect(metrics).not.toContain("PutRequests");
    expect(Object.keys(s.template.toJSON().Outputs)).not.toContain("FailedBatchesBucket");
  });
});
