import { Match } from "aws-cdk-lib/assertions";
import { OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import { describe, expect, it } from "vitest";
import { configSchema, parseConfig } from "#chat/config.ts";
import { functions } from "#functions/manifest.ts";
import { parseModelId } from "../../infra/bedrock-access.ts";
import { bundlingFor } from "../../infra/chat-function.ts";
import { EXTERNAL_CONTEXT, functionLogicalId, resourcesOf, type Synth, synth } from "./synth.ts";

describe("external data plane", () => {
  const s = synth(EXTERNAL_CONTEXT);

  it("creates no VPC, database, cache or cluster", () => {
    for (const type of [
      "AWS::EC2::VPC",
      "AWS::RDS::DBInstance",
      "AWS::RDS::DBProxy",
      "AWS::ElastiCache::ServerlessCache",
      "AWS::MSK::ServerlessCluster",
    ])
      expect(resourcesOf(s.template, type), type).toEqual({});
  });

  it("passes the given endpoints to the functions", () => {
    s.template.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: `${s.stack.stackName}-messages-post`,
      Environment: {
        Variables: Match.objectLike({
          DATABASE_SECRET_ARN: EXTERNAL_CONTEXT.databaseSecretArn,
          DATABASE_SSL: "true", // external mode's default: the endpoints are reached over the network
          REDIS_URL: "redis://redis:6379",
          KAFKA_BROKERS: "kafka:9092",
          KAFKA_TOPIC: "chat-messages",
        }),
      },
    });
  });

  it("still runs the migrations custom resource and keeps routes and schedules", () => {
    expect(Object.keys(resourcesOf(s.template, "Custom::ChatMigrations"))).toHaveLength(1);
    expect(Object.keys(resourcesOf(s.template, "AWS::ApiGatewayV2::Route")).length).toBe(
      functions.filter((f) => f.route || f.defaultRoute).length,
    );
    expect(Object.keys(resourcesOf(s.template, "AWS::Scheduler::Schedule")).length).toBe(
      functions.filter((f) => f.schedule).length,
    );
  });

  it("takes a plain database URL for local tools when no secret is given", () => {
    const local = synth({ dataPlane: "external", databaseUrl: "postgres://chat:chat@postgres:5432/chat" });
    local.template.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: `${local.stack.stackName}-session-get`,
      Environment: {
        Variables: Match.objectLike({ DATABASE_URL: "postgres://chat:chat@postgres:5432/chat" }),
      },
    });
  });

  it("has no event source without Kafka credentials, and so no OffsetLag alarm", () => {
    expect(resourcesOf(s.template, "AWS::Lambda::EventSourceMapping")).toEqual({});
    const metrics = Object.values(resourcesOf(s.template, "AWS::CloudWatch::Alarm")).map(
      (a) => a.Properties?.MetricName,
    );
    expect(metrics).not.toContain("OffsetLag");
    expect(metrics).toEqual(expect.arrayContaining(["5xx", "RejectedEvents", "OutboxOldestPendingSeconds"]));
  });

  it("re-runs the migrations when pointed at another database or broker list", () => {
    const [migration] = Object.values(resourcesOf(s.template, "Custom::ChatMigrations"));
    expect(migration?.Properties).toMatchObject({
      Database: EXTERNAL_CONTEXT.databaseSecretArn,
      KafkaCluster: "kafka:9092",
    });
    const local = synth({ dataPlane: "external", databaseUrl: "postgres://chat:chat@postgres:5432/chat" });
    const [localMigration] = Object.values(resourcesOf(local.template, "Custom::ChatMigrations"));
    // a URL only by its hash: it holds the password
    expect(localMigration?.Properties?.Database).toMatch(/^url:[0-9a-f]{16}$/);
  });

  it("uses a self-managed Kafka event source when a SASL/SCRAM secret is given", () => {
    const withKafka = synth({
      ...EXTERNAL_CONTEXT,
      kafkaSecretArn: "arn:aws:secretsmanager:us-east-1:000000000000:secret:kafka-AbCdEf",
    });
    withKafka.template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      FunctionName: { Ref: functionLogicalId(withKafka, "events-consumer") },
      Topics: ["chat-messages"],
      StartingPosition: "TRIM_HORIZON",
      BatchSize: 100,
      SelfManagedEventSource: { Endpoints: { KafkaBootstrapServers: ["kafka:9092"] } },
      // two stacks on one cluster must not share (and split) a consumer group
      SelfManagedKafkaEventSourceConfig: { ConsumerGroupId: `${withKafka.stack.stackName}-events-consumer` },
    });
    withKafka.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      MetricName: "OffsetLag",
      Dimensions: [{ Name: "FunctionName", Value: { Ref: functionLogicalId(withKafka, "events-consumer") } }],
    });
  });

  it("with that secret the producers authenticate as the event source does (one listener, one protocol)", () => {
    const arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:kafka-AbCdEf";
    const withKafka = synth({ ...EXTERNAL_CONTEXT, kafkaSecretArn: arn });
    type Fn = { Environment?: { Variables?: Record<string, string> }; Role?: { "Fn::GetAtt"?: string[] } };
    const functionsWithKafka = Object.values(resourcesOf(withKafka.template, "AWS::Lambda::Function"))
      .map((r) => (r.Properties ?? {}) as Fn)
      .filter((fn) => fn.Environment?.Variables?.KAFKA_BROKERS !== undefined);
    expect(functionsWithKafka.length).toBeGreaterThan(5);
    const policies = Object.values(resourcesOf(withKafka.template, "AWS::IAM::Policy")).map(
      (p) => (p.Properties ?? {}) as { Roles?: { Ref?: string }[]; PolicyDocument?: unknown },
    );
    for (const fn of functionsWithKafka) {
      const env = fn.Environment?.Variables ?? {};
      expect(env).toMatchObject({ KAFKA_AUTH: "scram-sha-512", KAFKA_SECRET_ARN: arn });
      // the config the function parses from it is valid, and its role may read the secret
      expect(parseConfig({ ...env, DATABASE_URL: "postgres://x@y/z" }).KAFKA_AUTH).toBe("scram-sha-512");
      const role = fn.Role?.["Fn::GetAtt"]?.[0];
      const own = policies.filter((p) => p.Roles?.some((ref) => ref.Ref === role));
      expect(JSON.stringify(own.map((p) => p.PolicyDocument)), env.POWERTOOLS_SERVICE_NAME).toContain(arn);
    }
  });
});

describe("layer modes", () => {
  it("layer: CJS bundles that leave exactly the layer's packages (and SDK clients) to /opt", () => {
    const s = synth();
    const layerDescription = String(
      Object.values(resourcesOf(s.template, "AWS::Lambda::LayerVersion"))[0]?.Properties?.Description,
    );
    const layerPackages = layerDescription.replace(/^[^:]*: /, "").split(", ");
    const options = bundlingFor("layer", layerPackages);
    expect(options.format).toBe(OutputFormat.CJS);
    expect(options.externalModules).toEqual(["@aws-sdk/client-*", ...layerPackages]);
    expect(layerPackages).toEqual(expect.arrayContaining(["pg", "ioredis", "kafkajs"]));
    // zod is bundled (tree-shaken zod/mini, ~15 KB), not required from the layer (~40 ms per cold start).
    expect(layerPackages).not.toContain("zod");
  });

  it("bundled: ESM with only the SDK clients external", () => {
    const options = bundlingFor("bundled", []);
    expect(options.format).toBe(OutputFormat.ESM);
    expect(options.externalModules).toEqual(["@aws-sdk/client-*"]);
    expect(options.banner).toContain("createRequire");
  });

  it("bundled mode synthesizes with no layer at all, everything in each function's bundle", () => {
    const s = synth({ layerMode: "bundled" });
    expect(resourcesOf(s.template, "AWS::Lambda::LayerVersion")).toEqual({});
    for (const r of Object.values(resourcesOf(s.template, "AWS::Lambda::Function")))
      expect(r.Properties?.Layers).toBeUndefined();
  });
});

describe("availability zones", () => {
  const subnetAzs = (context: Record<string, unknown>) =>
    Object.values(resourcesOf(synth(context).template, "AWS::EC2::Subnet")).map((r) =>
      JSON.stringify(r.Properties?.AvailabilityZone),
    );

  it("default to the region's first two", () => {
    const azs = subnetAzs({});
    expect(azs).toHaveLength(2);
    for (const az of azs) expect(az).toContain("Fn::GetAZs");
  });

  it("take context availabilityZones, for regions where the first two lack RDS Proxy or MSK", () => {
    expect(subnetAzs({ availabilityZones: "us-east-1b,us-east-1c" }).sort()).toEqual([
      '"us-east-1b"',
      '"us-east-1c"',
    ]);
  });
});

describe("responder", () => {
  it("bedrock: model id in env, InvokeModel on that model only, a bedrock-runtime endpoint", () => {
    const s = synth({ responder: "bedrock", bedrockModelId: "anthropic.claude-3-5-haiku-20241022-v1:0" });
    s.template.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: `${s.stack.stackName}-messages-post`,
      Environment: {
        Variables: Match.objectLike({
          RESPONDER: "bedrock",
          BEDROCK_MODEL_ID: "anthropic.claude-3-5-haiku-20241022-v1:0",
        }),
      },
    });
    const policies = JSON.stringify(resourcesOf(s.template, "AWS::IAM::Policy"));
    expect(policies).toContain("foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0");
    expect(policies).not.toContain("inference-profile/");
    s.template.hasResourceProperties("AWS::EC2::VPCEndpoint", {
      ServiceName: Match.objectLike({ "Fn::Join": Match.arrayWith([Match.arrayWith([".bedrock-runtime"])]) }),
    });
  });

  /** The bedrock:InvokeModel statements of messages-post's role, their ARNs as text. */
  function bedrockStatements(modelId?: string) {
    const s = synth({ responder: "bedrock", ...(modelId ? { bedrockModelId: modelId } : {}) });
    type St = { Action: string; Resource: unknown; Condition?: unknown };
    return Object.values(resourcesOf(s.template, "AWS::IAM::Policy"))
      .filter((p) => JSON.stringify(p.Properties?.Roles).includes("MessagesPost"))
      .flatMap((p) => ((p.Properties?.PolicyDocument ?? {}) as { Statement?: St[] }).Statement ?? [])
      .filter((st) => st.Action === "bedrock:InvokeModel")
      .map((st) => ({
        resources: JSON.stringify(st.Resource),
        condition: JSON.stringify(st.Condition ?? null),
      }));
  }

  it("an inference profile: the profile, and its model in the regions it routes to, only through it", () => {
    const profile = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
    const [onProfile, onModel] = bedrockStatements(profile);
    expect(onProfile?.resources).toContain(`:inference-profile/${profile}`);
    expect(onProfile?.resources).toContain('{"Ref":"AWS::Region"}');
    expect(onModel?.resources).toContain(
      ":bedrock:*::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
    );
    // a global profile's model ARN has no region at all
    expect(onModel?.resources).toContain(
      ":bedrock:::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
    );
    expect(onModel?.condition).toContain("bedrock:InferenceProfileArn");
    expect(onModel?.condition).toContain(`:inference-profile/${profile}`);
  });

  it("defaults to a current model through an inference profile", () => {
    const defaultModel = configSchema.parse({}).BEDROCK_MODEL_ID;
    expect(parseModelId(defaultModel).inferenceProfile).toBe(defaultModel);
    expect(defaultModel).not.toMatch(/claude-3/);
    expect(bedrockStatements()).toHaveLength(2);
  });

  it("tells inference profile ids from foundation model ids", () => {
    expect(parseModelId("global.anthropic.claude-haiku-4-5-20251001-v1:0")).toEqual({
      foundationModel: "anthropic.claude-haiku-4-5-20251001-v1:0",
      inferenceProfile: "global.anthropic.claude-haiku-4-5-20251001-v1:0",
    });
    expect(parseModelId("eu.anthropic.claude-haiku-4-5-20251001-v1:0").foundationModel).toBe(
      "anthropic.claude-haiku-4-5-20251001-v1:0",
    );
    expect(parseModelId("anthropic.claude-haiku-4-5-20251001-v1:0")).toEqual({
      foundationModel: "anthropic.claude-haiku-4-5-20251001-v1:0",
    });
    expect(parseModelId("amazon.nova-lite-v1:0")).toEqual({ foundationModel: "amazon.nova-lite-v1:0" });
  });
});

describe("tracing", () => {
  const traced = (s: Synth) =>
    Object.values(resourcesOf(s.template, "AWS::Lambda::Function")).map(
      (r) => (r.Properties?.TracingConfig as { Mode?: string } | undefined)?.Mode ?? "none",
    );
  const xrayEndpoints = (s: Synth) =>
    Object.values(resourcesOf(s.template, "AWS::EC2::VPCEndpoint")).filter((r) =>
      JSON.stringify(r.Properties?.ServiceName).includes(".xray"),
    );

  it("is off by default: no function traced, no X-Ray endpoint", () => {
    const s = synth();
    expect(new Set(traced(s))).toEqual(new Set(["none"]));
    expect(xrayEndpoints(s)).toHaveLength(0);
  });

  it("-c tracing=true: every function of the app traced, and the VPC reaches X-Ray through an endpoint", () => {
    const s = synth({ tracing: "true" });
    for (const spec of functions)
      s.template.hasResourceProperties("AWS::Lambda::Function", {
        FunctionName: `${s.stack.stackName}-${spec.name}`,
        TracingConfig: { Mode: "Active" },
      });
    expect(xrayEndpoints(s)).toHaveLength(1);
    const policies = JSON.stringify(resourcesOf(s.template, "AWS::IAM::Policy"));
    expect(policies).toContain("xray:PutTraceSegments");
  });
});
