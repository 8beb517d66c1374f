import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type Backend, functions } from "#functions/manifest.ts";
import { FUNCTIONS_DIR } from "../../infra/paths.ts";
import { EXTERNAL_CONTEXT, functionLogicalId, resourcesOf, type Synth, synth } from "./synth.ts";

type Statement = { Action: string | string[]; Resource: unknown; Condition?: unknown };

const propertiesOf = (s: Synth, name: string) =>
  resourcesOf(s.template, "AWS::Lambda::Function")[functionLogicalId(s, name)]?.Properties ?? {};

/** The inline policies attached to the function's role. */
function policiesOf(s: Synth, name: string) {
  const role = (propertiesOf(s, name).Role as { "Fn::GetAtt": string[] } | undefined)?.["Fn::GetAtt"][0];
  return Object.values(resourcesOf(s.template, "AWS::IAM::Policy")).filter((p) =>
    ((p.Properties?.Roles ?? []) as { Ref: string }[]).some((r) => r.Ref === role),
  );
}

/** Every action the function's role may take. */
function actionsOf(s: Synth, name: string): string[] {
  return policiesOf(s, name)
    .flatMap((p) => ((p.Properties?.PolicyDocument ?? {}) as { Statement?: Statement[] }).Statement ?? [])
    .flatMap((st) => [st.Action].flat());
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
