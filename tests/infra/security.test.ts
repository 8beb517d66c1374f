import { describe, expect, it } from "vitest";
import { configSchema } from "#chat/config.ts";
import { type Backend, functions } from "#functions/manifest.ts";
import { MIGRATOR_USES, reachesDataPlane } from "../../infra/data-plane.ts";
import { ENI_ACTIONS } from "../../infra/execution-role.ts";
import { EXTERNAL_CONTEXT, resourcesOf, type Synth, synth } from "./synth.ts";

const variants: [string, Synth][] = [
  ["aws", synth()],
  ["external", synth(EXTERNAL_CONTEXT)],
];

type Statement = { Effect: string; Action: string | string[]; Resource: unknown };

function statements(s: Synth): Statement[] {
  return Object.values(resourcesOf(s.template, "AWS::IAM::Policy")).flatMap(
    (p) => (p.Properties?.PolicyDocument as { Statement: Statement[] } | undefined)?.Statement ?? [],
  );
}

/** The app's functions (manifest + migration handler), not CDK's own custom-resource framework functions. */
function envOf(s: Synth): [string, Record<string, unknown>][] {
  const functions = Object.entries(resourcesOf(s.template, "AWS::Lambda::Function"));
  return functions
    .filter(([, r]) => r.Properties?.Handler === "index.handler")
    .map(([id, r]) => [
      id,
      (r.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {},
    ]);
}

// Set by the stack for the Node/Powertools runtime rather than read by layers/chat/config.ts.
const RUNTIME_VARIABLES = new Set([
  "NODE_OPTIONS",
  "POWERTOOLS_SERVICE_NAME",
  "POWERTOOLS_LOG_LEVEL",
  "POWERTOOLS_METRICS_NAMESPACE",
]);

describe.each(variants)("%s variant: least privilege and secrets", (_name, s) => {
  it("has no IAM statement allowing * on *, no * action at all, and on * only reads and Lambda's network interfaces", () => {
    for (const st of statements(s)) {
      const actions = [st.Action].flat();
      expect(actions, JSON.stringify(st)).not.toContain("*");
      const resources = [st.Resource].flat();
      const everything = resources.includes("*");
      if (everything)
        expect(
          actions.every((a) => /:(Describe|List|Get)/.test(a) || ENI_ACTIONS.includes(a)),
          JSON.stringify(st),
        ).toBe(true);
    }
  });

  it("never puts a password or a connection URL with credentials in a function's environment", () => {
    for (const [id, env] of envOf(s)) {
      expect(
        Object.keys(env).filter((k) => /PASSWORD|DATABASE_URL/.test(k)),
        id,
      ).toEqual([]);
      for (const value of Object.values(env))
        expect(JSON.stringify(value), id).not.toMatch(/:\/\/[^/@"]+:[^/@"]+@/);
    }
  });

  it("sets only variables that layers/chat/config.ts reads", () => {
    const known = new Set([...Object.keys(configSchema.shape), ...RUNTIME_VARIABLES]);
    for (const [id, env] of envOf(s)) {
      const unknown = Object.keys(env).filter((k) => !known.has(k));
      expect(unknown, `${id}: add these to configSchema or stop setting them`).toEqual([]);
    }
  });
});

describe("aws variant: the database secret", () => {
  const s = synth();
  it("is referenced by ARN and granted read, never inlined (the owner's and the application role's)", () => {
    const secretIds = Object.keys(resourcesOf(s.template, "AWS::SecretsManager::SecretTargetAttachment"));
    expect(secretIds).toHaveLength(2);
    const refs = secretIds.map((id) => ({ Ref: id }));
    for (const [id, env] of envOf(s))
      for (const key of ["DATABASE_SECRET_ARN", "DATABASE_APP_SECRET_ARN"])
        if (key in env) expect(refs, `${id} ${key}`).toContainEqual(env[key]);
    const readers = statements(s).filter(
      (st) =>
        [st.Action].flat().includes("secretsmanager:GetSecretValue") &&
        secretIds.some((id) => JSON.stringify(st.Resource).includes(id)),
    );
    expect(readers.length).toBeGreaterThanOrEqual(12);
  });

  it("generates the password in Secrets Manager", () => {
    s.template.hasResourceProperties("AWS::SecretsManager::Secret", {
      GenerateSecretString: {
        GenerateStringKey: "password",
        SecretStringTemplate: '{"username":"chat_admin"}',
      },
    });
    s.template.hasResourceProperties("AWS::SecretsManager::Secret", {
      GenerateSecretString: {
        GenerateStringKey: "password",
        SecretStringTemplate: '{"username":"chat_app"}',
      },
    });
    s.template.hasResourceProperties("AWS::SecretsManager::RotationSchedule", {
      RotationRules: { ScheduleExpression: "rate(30 days)" },
    });
  });
});

describe("aws variant: network", () => {
  const s = synth();
  const groups = resourcesOf(s.template, "AWS::EC2::SecurityGroup");
  const idOf = (description: RegExp) => {
    const found = Object.entries(groups).find(([, r]) =>
      description.test(String(r.Properties?.GroupDescription)),
    );
    if (!found) throw new Error(`no security group ${description}`);
    return found[0];
  };
  const rules = (type: string) =>
    Object.values(resourcesOf(s.template, type)).map((r) => r.Properties as Record<string, unknown>);
  const groupOf = (ref: unknown) => (ref as { "Fn::GetAtt"?: string[] } | undefined)?.["Fn::GetAtt"]?.[0];
  const lambdas = Object.values(resourcesOf(s.template, "AWS::Lambda::Function"));
  const functionNamed = (name: string) =>
    lambdas.find((r) => r.Properties?.FunctionName === `${s.stack.stackName}-${name}`);
  const migrations = lambdas.find((r) => /^Apply SQL migrations/.test(String(r.Properties?.Description)));

  /** Where a function's security groups let it out: [destination group, from port, to port]. */
  function reachOf(fn: { Properties?: Record<string, unknown> } | undefined, name: string): unknown[][] {
    const vpc = fn?.Properties?.VpcConfig as { SecurityGroupIds?: unknown[] } | undefined;
    const own = new Set((vpc?.SecurityGroupIds ?? []).map(groupOf));
    for (const g of own) expect(JSON.stringify(groups[g ?? ""]?.Properties), name).not.toContain("0.0.0.0/0");
    return rules("AWS::EC2::SecurityGroupEgress")
      .filter((r) => own.has(groupOf(r.GroupId)))
      .map((r) => [groupOf(r.DestinationSecurityGroupId), r.FromPort, r.ToPort])
      .sort();
  }

  /** What `uses` needs: the proxy, the cache, the brokers, and the endpoints for the secret and the brokers' look-up. */
  function reachFor(uses: readonly Backend[]): unknown[][] {
    const kafka = uses.includes("kafka-produce") || uses.includes("kafka-describe");
    return [
      ...(uses.includes("postgres") ? [[idOf(/^rds proxy/), 5432, 5432]] : []),
      ...(uses.includes("redis") ? [[idOf(/^valkey/), 6379, 6380]] : []),
      ...(kafka ? [[idOf(/^msk serverless/), 9098, 9098]] : []),
      ...(uses.includes("postgres") || kafka ? [[idOf(/^interface endpoints/), 443, 443]] : []),
    ].sort();
  }

  it.each(
    functions.filter((f) => reachesDataPlane(f.uses ?? [])).map((f) => [f.name, f.uses ?? []] as const),
  )("lets %s out only to what its manifest entry uses", (name, uses) => {
    expect(reachOf(functionNamed(name), name)).toEqual(reachFor(uses));
  });

  it("lets the public $default route reach the cache alone, and the migrations no cache", () => {
    expect(reachOf(functionNamed("route-not-found"), "route-not-found")).toEqual([
      [idOf(/^valkey/), 6379, 6380],
    ]);
    expect(reachOf(migrations, "migrations")).toEqual(reachFor(MIGRATOR_USES));
  });

  it("opens the database only to the proxy and the rotation function", () => {
    const dbSg = idOf(/^postgres/);
    const sources = rules("AWS::EC2::SecurityGroupIngress")
      .filter((r) => JSON.stringify(r.GroupId).includes(dbSg))
      .map((r) => JSON.stringify(r.SourceSecurityGroupId).match(/"(\w+Sg\w+)"/)?.[1]);
    expect(sources.sort()).toEqual([idOf(/^rds proxy/), idOf(/^secret rotation/)].sort());
  });

  it("has no NAT gateway and no internet gateway", () => {
    expect(resourcesOf(s.template, "AWS::EC2::NatGateway")).toEqual({});
    expect(resourcesOf(s.template, "AWS::EC2::InternetGateway")).toEqual({});
  });

  it("requires TLS on the proxy and the cache URL", () => {
    s.template.hasResourceProperties("AWS::RDS::DBProxy", { RequireTLS: true, EngineFamily: "POSTGRESQL" });
    s.template.hasResourceProperties("AWS::ElastiCache::ServerlessCache", { Engine: "valkey" });
    s.template.hasResourceProperties("AWS::MSK::ServerlessCluster", {
      ClientAuthentication: { Sasl: { Iam: { Enabled: true } } },
    });
    s.template.hasResourceProperties("AWS::RDS::DBInstance", {
      Engine: "postgres",
      EngineVersion: "17",
      StorageEncrypted: true,
    });
  });
});
