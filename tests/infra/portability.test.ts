import { App, Stack } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import { describe, expect, it } from "vitest";
import { EXTERNAL_CONTEXT, resourcesOf, type Synth, synth } from "./synth.ts";

/**
 * "Deployable with `cdk deploy` to any account" (docs/deploy.md): a second copy of the stack next to the first
 * (`-c stackName=…`), and any region of the partitions cdk.json targets, from the one environment-agnostic template.
 */

type Template = ReturnType<Synth["template"]["toJSON"]>;

/** Properties that give a resource a physical name of its own (unique per account and region, or per account). */
const NAME_PROPERTIES = [
  "FunctionName",
  "DBProxyName",
  "DBInstanceIdentifier",
  "DBClusterIdentifier",
  "ServerlessCacheName",
  "ClusterName",
  "BucketName",
  "LogGroupName",
  "RoleName",
  "ManagedPolicyName",
  "AlarmName",
  "TopicName",
  "Name",
  "AliasName",
];

/** Every literal physical name in a template (names made of intrinsics are the stack's own by construction). */
function physicalNames(template: Template): string[] {
  const names: string[] = [];
  for (const r of Object.values(
    template.Resources as Record<string, { Type: string; Properties?: object }>,
  )) {
    const props = (r.Properties ?? {}) as Record<string, unknown>;
    // An HTTP API's Name is a label, not unique: two APIs may share it.
    for (const key of NAME_PROPERTIES)
      if (typeof props[key] === "string" && !(key === "Name" && r.Type.startsWith("AWS::ApiGatewayV2::")))
        names.push(`${r.Type}.${key}=${props[key]}`);
    // The rotation functions (Serverless applications) take their name as a parameter.
    const fn = (props.Parameters as Record<string, unknown> | undefined)?.functionName;
    if (typeof fn === "string") names.push(`${r.Type}.functionName=${fn}`);
  }
  for (const o of Object.values((template.Outputs ?? {}) as Record<string, { Export?: { Name?: unknown } }>))
    if (o.Export?.Name !== undefined) names.push(`Export=${JSON.stringify(o.Export.Name)}`);
  return names;
}

/** The metric an alarm watches, when nothing in it names a resource of its own stack (all literal). */
function sharedMetric(alarm: Record<string, unknown>): string | undefined {
  const key = JSON.stringify([alarm.Namespace, alarm.MetricName, alarm.Dimensions]);
  return key.includes('"Ref"') || key.includes('"Fn::') ? undefined : key;
}

describe("a second stack in the same account and region (-c stackName=…)", () => {
  const production = synth({});
  const staging = synth({ stackName: "ChatStaging" });

  it("shares no physical name with the first", () => {
    const first = new Set(physicalNames(production.template.toJSON()));
    const clashes = physicalNames(staging.template.toJSON()).filter((n) => first.has(n));
    expect(clashes).toEqual([]);
  });

  it("alarms on its own functions' metrics only, not the first stack's", () => {
    const watched = (s: Synth) =>
      Object.values(resourcesOf(s.template, "AWS::CloudWatch::Alarm"))
        .map((a) => sharedMetric(a.Properties ?? {}))
        .filter((m) => m !== undefined);
    const first = new Set(watched(production));
    // Same namespace, name and dimensions: CloudWatch adds both stacks' data points into one metric, so staging's
    // failing canary pages production's alarm, and production's data hides a staging canary that stopped.
    expect(watched(staging).filter((m) => first.has(m))).toEqual([]);
    expect(watched(staging).length).toBeGreaterThan(0);
  });

  it("keeps the first stack's metrics where they were (its namespace is its name, ChatBackend)", () => {
    production.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "ChatBackend",
      MetricName: "HealthCheckFailed",
    });
    staging.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "ChatStaging",
      MetricName: "HealthCheckFailed",
    });
  });

  it("has its functions emit their metrics into its own namespace, the one its alarms watch", () => {
    const namespaces = (s: Synth) =>
      new Set(
        Object.values(resourcesOf(s.template, "AWS::Lambda::Function"))
          .map(
            (f) =>
              (f.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables
                ?.POWERTOOLS_METRICS_NAMESPACE,
          )
          .filter((n) => n !== undefined),
      );
    expect([...namespaces(production)]).toEqual(["ChatBackend"]);
    // with production's namespace, staging's canary would fail production's alarms, and its own watch nothing
    expect([...namespaces(staging)]).toEqual(["ChatStaging"]);
  });
});

describe("a second stack on the same external Kafka cluster (-c dataPlane=external)", () => {
  const shared = {
    ...EXTERNAL_CONTEXT,
    kafkaSecretArn: "arn:aws:secretsmanager:us-east-1:000000000000:secret:chat-kafka-AbCdEf",
  };
  // Each its own database and cache; the brokers are the same. On one topic, each stack's consumer would apply the
  // other's events to its own projection (its consumer group is its own, so it reads every event of the topic).
  const staging = synth({ ...shared, stackName: "ChatStaging", kafkaTopic: "staging.chat-messages" });

  it("publishes, consumes and creates a topic of its own (-c kafkaTopic)", () => {
    const fns = Object.values(resourcesOf(staging.template, "AWS::Lambda::Function"));
    const topics = new Set(
      fns
        .map(
          (f) =>
            (f.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables,
        )
        .map((v) => v?.KAFKA_TOPIC)
        .filter((t) => t !== undefined),
    );
    expect([...topics]).toEqual(["staging.chat-messages"]);
    const mappings = Object.values(resourcesOf(staging.template, "AWS::Lambda::EventSourceMapping"));
    expect(mappings.map((m) => m.Properties?.Topics)).toEqual([["staging.chat-messages"]]);
    staging.template.hasResourceProperties("Custom::ChatMigrations", { Topic: "staging.chat-messages" });
  });

  it("keeps chat-messages by default, and refuses a name Kafka would", () => {
    const first = synth(shared);
    first.template.hasResourceProperties("Custom::ChatMigrations", { Topic: "chat-messages" });
    expect(() => synth({ ...shared, kafkaTopic: "staging/chat" })).toThrow(/kafkaTopic/);
    expect(() => synth({ ...shared, kafkaTopic: ".." })).toThrow(/kafkaTopic/);
  });
});

/** Evaluates the intrinsics an endpoint's ServiceName may hold, as CloudFormation would in one region. */
function evaluate(value: unknown, template: Template, env: { region: string; partition: string }): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => evaluate(v, template, env));
  const [fn, arg] = Object.entries(value)[0] as [string, unknown];
  const ev = (v: unknown) => evaluate(v, template, env);
  const condition = (name: string) => ev((template.Conditions as Record<string, unknown>)[name]);
  switch (fn) {
    case "Ref":
      if (arg === "AWS::Region") return env.region;
      if (arg === "AWS::Partition") return env.partition;
      if (arg === "AWS::URLSuffix") return env.partition === "aws-cn" ? "amazonaws.com.cn" : "amazonaws.com";
      throw new Error(`cannot evaluate Ref ${String(arg)}`);
    case "Fn::Join": {
      const [sep, parts] = arg as [string, unknown[]];
      return (ev(parts) as unknown[]).join(sep);
    }
    case "Fn::Equals": {
      const [a, b] = ev(arg) as [unknown, unknown];
      return a === b;
    }
    case "Fn::Or":
      return (ev(arg) as boolean[]).some(Boolean);
    case "Fn::If": {
      const [name, yes, no] = arg as [string, unknown, unknown];
      return condition(name) ? ev(yes) : ev(no);
    }
    case "Condition":
      return condition(arg as string);
    default:
      throw new Error(`cannot evaluate ${fn}`);
  }
}

/** The name CDK gives the service's endpoint in a stack pinned to `region` (it knows each region's names). */
function pinnedName(shortName: string, region: string): string {
  const stack = new Stack(new App(), "Pinned", { env: { account: "111111111111", region } });
  return stack.resolve(new ec2.InterfaceVpcEndpointAwsService(shortName).name);
}

describe("other regions and partitions, from the one environment-agnostic template", () => {
  // cdk.json's @aws-cdk/core:target-partitions: aws and aws-cn.
  const regions = [
    { region: "us-east-1", partition: "aws" },
    { region: "eu-central-1", partition: "aws" },
    { region: "cn-north-1", partition: "aws-cn" },
    { region: "cn-northwest-1", partition: "aws-cn" },
  ];

  it("names every interface endpoint's service as it is called in the region deployed to", () => {
    // bedrock and tracing add the bedrock-runtime and X-Ray endpoints; S3 comes with the Kafka event source.
    const s = synth({ responder: "bedrock", tracing: "true" });
    const template = s.template.toJSON();
    const endpoints = Object.values(resourcesOf(s.template, "AWS::EC2::VPCEndpoint"));
    expect(endpoints.length).toBe(5);
    const wrong: string[] = [];
    for (const env of regions)
      for (const ep of endpoints) {
        const name = evaluate(ep.Properties?.ServiceName, template, env) as string;
        const shortName = name.slice(name.indexOf(`.${env.region}.`) + env.region.length + 2);
        const expected = pinnedName(shortName, env.region);
        if (name !== expected) wrong.push(`${env.region}: ${name}, not ${expected}`);
      }
    // e.g. S3's and X-Ray's endpoints are cn.com.amazonaws.cn-north-1.s3 and …xray in the China regions: the
    // deploy fails creating an endpoint whose service does not exist there.
    expect(wrong).toEqual([]);
  });

  it("writes no partition or account into the template: ARNs take AWS::Partition and AWS::AccountId", () => {
    for (const context of [{}, { responder: "bedrock", tracing: "true", dbSecretRotationDays: "0" }]) {
      // CDK's own mapping of the rotation application per partition aside.
      const json = JSON.stringify({ ...synth(context).template.toJSON(), Mappings: undefined });
      expect(json.match(/arn:aws[-a-z]*:[^"]*/g) ?? []).toEqual([]);
      expect(json.match(/[^"]*amazonaws\.com\.cn[^"]*/g) ?? []).toEqual([]);
      expect(json.match(/\b\d{12}\b/g) ?? []).toEqual([]);
    }
  });

  it("lets the functions reach each endpoint on 443, the port its service answers on", () => {
    const s = synth({ responder: "bedrock", tracing: "true" });
    const [endpointSg] = Object.entries(resourcesOf(s.template, "AWS::EC2::SecurityGroup")).find(([, g]) =>
      String(g.Properties?.GroupDescription).startsWith("interface endpoints"),
    ) ?? [""];
    const ingress = Object.values(resourcesOf(s.template, "AWS::EC2::SecurityGroupIngress"))
      .map((r) => r.Properties ?? {})
      .filter((p) => JSON.stringify(p.GroupId).includes(`"${endpointSg}"`));
    expect(ingress.length).toBeGreaterThan(0);
    for (const rule of ingress) expect([rule.FromPort, rule.ToPort]).toEqual([443, 443]);
  });
});
