import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type Backend, functions } from "#functions/manifest.ts";
import { FUNCTIONS_DIR } from "../../infra/paths.ts";
import { EXTERNAL_CONTEXT, functionLogicalId, resourcesOf, type Synth, synth } from "./synth.ts";

type Statement = { Action: string | string[]; Resource: unknown; Condition?: unknown };

/** The deploy-time migrations' function, which has no name of its own. */
const MIGRATIONS = "migrations";

function propertiesOf(s: Synth, name: string): Record<string, unknown> {
  const lambdas = resourcesOf(s.template, "AWS::Lambda::Function");
  if (name !== MIGRATIONS) return lambdas[functionLogicalId(s, name)]?.Properties ?? {};
  const migrations = Object.values(lambdas).find((r) =>
    /^Apply SQL migrations/.test(String(r.Properties?.Description)),
  );
  return migrations?.Properties ?? {};
}

const roleIdOf = (s: Synth, name: string) =>
  (propertiesOf(s, name).Role as { "Fn::GetAtt": string[] } | undefined)?.["Fn::GetAtt"][0];

const roleOf = (s: Synth, name: string) => resourcesOf(s.template, "AWS::IAM::Role")[roleIdOf(s, name) ?? ""];

/** The inline policies attached to the function's role. */
function policiesOf(s: Synth, name: string) {
  const role = roleIdOf(s, name);
  return Object.values(resourcesOf(s.template, "AWS::IAM::Policy")).filter((p) =>
    ((p.Properties?.Roles ?? []) as { Ref: string }[]).some((r) => r.Ref === role),
  );
}

const statementsOf = (s: Synth, name: string): Statement[] =>
  policiesOf(s, name).flatMap(
    (p) => ((p.Properties?.PolicyDocument ?? {}) as { Statement?: Statement[] }).Statement ?? [],
  );

/** Every action the function's role may take. */
function actionsOf(s: Synth, name: string): string[] {
  return statementsOf(s, name).flatMap((st) => [st.Action].flat());
}

function environmentOf(s: Synth, name: string): Record<string, unknown> {
  return (
    (propertiesOf(s, name).Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ??
    {}
  );
}

const inVpc = (s: Synth, name: string) => propertiesOf(s, name).VpcConfig !== undefined;

const usesOf = (name: string): readonly Backend[] => functions.find((f) => f.name === name)?.uses ?? [];

describe("aws variant: each function gets what its manifest entry uses, and nothing more", () => {
  const s = synth({ responder: "bedrock" });

  it("every manifest entry says what it uses", () => {
    for (const spec of functions) expect(spec.uses, spec.name).toBeDefined();
  });

  it.each(functions.map((f) => [f.name] as const))("%s: its policies follow `uses`", (name) => {
    const uses = usesOf(name);
    const actions = actionsOf(s, name);
    expect(actions.includes("secretsmanager:GetSecretValue"), "database secret").toBe(
      uses.includes("postgres"),
    );
    expect(actions.includes("kafka-cluster:WriteData"), "WriteData").toBe(uses.includes("kafka-produce"));
    expect(actions.includes("bedrock:InvokeModel"), "InvokeModel").toBe(uses.includes("responder"));
    const kafka =
      uses.some((u) => u.startsWith("kafka-")) || !!functions.find((f) => f.name === name)?.kafkaTopic;
    expect(actions.includes("kafka-cluster:Connect"), "Connect").toBe(kafka);
  });

  it("a handler that evicts from the cache (maintenance's purge) uses Redis: without it the guard is null", () => {
    const evicting = functions.filter((f) =>
      readFileSync(`${FUNCTIONS_DIR}/${f.handler}.ts`, "utf8").includes("getCacheGuard()"),
    );
    expect(evicting.map((f) => f.name)).toContain("maintenance");
    for (const f of evicting) {
      expect(f.uses, f.name).toContain("redis");
      expect(environmentOf(s, f.name).REDIS_URL, f.name).toBeDefined();
    }
  });

  it("openapi and route-not-found get neither the database secret nor any Kafka access", () => {
    for (const name of ["openapi", "route-not-found"]) {
      const actions = actionsOf(s, name);
      expect(
        actions.filter((a) => /^(secretsmanager|kafka|kafka-cluster|bedrock):/.test(a)),
        name,
      ).toEqual([]);
      expect(
        Object.keys(environmentOf(s, name)).filter((k) => /^(DATABASE|MSK|KAFKA)_/.test(k)),
        name,
      ).toEqual([]);
    }
    // route-not-found rate-limits through Redis (a security group, no IAM); openapi reaches nothing
    expect(environmentOf(s, "route-not-found").REDIS_URL).toBeDefined();
    expect(inVpc(s, "route-not-found")).toBe(true);
    expect(inVpc(s, "openapi")).toBe(false);
  });

  it("events-consumer reads its topic but may not write to it; the relay and the writers may", () => {
    const consumer = actionsOf(s, "events-consumer");
    expect(consumer).toEqual(
      expect.arrayContaining(["kafka-cluster:ReadData", "secretsmanager:GetSecretValue"]),
    );
    expect(consumer).not.toContain("kafka-cluster:WriteData");
    for (const name of ["outbox-relay", "messages-post", "sessions-create", "session-erase"])
      expect(actionsOf(s, name), name).toContain("kafka-cluster:WriteData");
  });

  it("health describes the cluster for its ping, and may not write", () => {
    const health = actionsOf(s, "health");
    expect(health).toContain("kafka-cluster:DescribeCluster");
    expect(health).not.toContain("kafka-cluster:WriteData");
    expect(environmentOf(s, "health").MSK_CLUSTER_ARN).toBeDefined();
  });

  it("read-only functions get no Kafka settings, so they never load kafkajs", () => {
    for (const name of ["session-get", "session-messages", "session-suggestions", "maintenance"]) {
      expect(environmentOf(s, name).MSK_CLUSTER_ARN, name).toBeUndefined();
      expect(
        actionsOf(s, name).filter((a) => a.startsWith("kafka")),
        name,
      ).toEqual([]);
    }
  });
});

describe("external variant: secrets only where used", () => {
  const arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:kafka-AbCdEf";
  const s = synth({ ...EXTERNAL_CONTEXT, kafkaSecretArn: arn });
  const policies = (name: string) => JSON.stringify(policiesOf(s, name));

  it("openapi may read neither the database nor the Kafka secret", () => {
    expect(policies("openapi")).not.toContain(EXTERNAL_CONTEXT.databaseSecretArn);
    expect(policies("openapi")).not.toContain(arn);
  });

  it("a reader gets the database secret only; a writer both", () => {
    expect(policies("session-get")).toContain(EXTERNAL_CONTEXT.databaseSecretArn);
    expect(policies("session-get")).not.toContain(arn);
    expect(policies("messages-post")).toContain(arn);
  });
});

describe.each([
  ["aws", {}],
  ["aws + bedrock, tracing", { responder: "bedrock", tracing: "true" }],
  ["external", EXTERNAL_CONTEXT],
])("%s: each function writes logs only to its own log group", (_name, context) => {
  const s = synth(context);
  const names = [...functions.map((f) => f.name), MIGRATIONS];

  it.each(names)("%s: no AWS managed policy, and logs only on its own group", (name) => {
    const role = roleOf(s, name);
    // AWSLambdaBasicExecutionRole, AWSLambdaVPCAccessExecutionRole and AWSLambdaMSKExecutionRole: logs on `*`
    expect(role?.Properties?.ManagedPolicyArns ?? [], name).toEqual([]);
    const logs = statementsOf(s, name).filter((st) => [st.Action].flat().some((a) => a.startsWith("logs:")));
    const group = propertiesOf(s, name).LoggingConfig as { LogGroup?: { Ref: string } } | undefined;
    expect(group?.LogGroup?.Ref, name).toBeDefined();
    expect(logs, name).toEqual([
      {
        Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
        Effect: "Allow",
        Resource: { "Fn::GetAtt": [group?.LogGroup?.Ref, "Arn"] },
      },
    ]);
  });
});

describe("aws variant: the Kafka event source's own permissions, inline", () => {
  const s = synth();
  const cluster = {
    "Fn::GetAtt": [Object.keys(resourcesOf(s.template, "AWS::MSK::ServerlessCluster"))[0], "Arn"],
  };

  it("lets events-consumer's pollers describe its MSK Serverless cluster (DescribeClusterV2), on its ARN", () => {
    const statements = statementsOf(s, "events-consumer");
    expect(statements).toContainEqual(
      expect.objectContaining({
        Action: expect.arrayContaining(["kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"]),
        Resource: cluster,
      }),
    );
    // The pollers' network interfaces: AWSLambdaMSKExecutionRole's EC2 actions
    const ec2 = statementsOf(s, "events-consumer").flatMap((st) =>
      [st.Action].flat().filter((a) => a.startsWith("ec2:")),
    );
    expect(ec2).toEqual(
      expect.arrayContaining([
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeVpcs",
        "ec2:DeleteNetworkInterface",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
      ]),
    );
  });
});

describe("aws + bedrock, tracing: the interface endpoints", () => {
  const s = synth({ responder: "bedrock", tracing: "true" });
  const groups = resourcesOf(s.template, "AWS::EC2::SecurityGroup");
  const endpointsClient = Object.entries(groups).find(([, r]) =>
    /interface endpoints only$/.test(String(r.Properties?.GroupDescription)),
  )?.[0];

  // X-Ray's daemon sends every traced function's segments through its endpoint, the cache's clients' too
  it("a function in the VPC that uses the cache alone reaches them, for X-Ray's segments", () => {
    const vpc = propertiesOf(s, "route-not-found").VpcConfig as { SecurityGroupIds?: unknown[] } | undefined;
    expect(endpointsClient).toBeDefined();
    expect(JSON.stringify(vpc?.SecurityGroupIds)).toContain(`"${endpointsClient}"`);
  });
});
