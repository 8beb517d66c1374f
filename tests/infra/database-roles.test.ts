import { describe, expect, it } from "vitest";
import { functions } from "#functions/manifest.ts";
import { functionLogicalId, resourcesOf, synth } from "./synth.ts";

/**
 * The aws data plane's two database users: the owner (chat_admin), whose secret only the deploy-time migrations
 * read, and the application role (chat_app), which every function that reaches Postgres connects as; both behind
 * the proxy, both rotated.
 */
const s = synth();
const resources = s.template.toJSON().Resources as Record<
  string,
  { Type: string; Properties?: Record<string, unknown> }
>;
const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);

/** The secret attachment (its Ref is the attached secret's ARN) of the generated secret for `username`. */
function attachmentOf(username: string): string {
  const secret = ofType("AWS::SecretsManager::Secret").find(([, r]) =>
    String(
      (r.Properties?.GenerateSecretString as { SecretStringTemplate?: string })?.SecretStringTemplate,
    ).includes(`"${username}"`),
  );
  if (!secret) throw new Error(`no secret for ${username}`);
  const attachment = ofType("AWS::SecretsManager::SecretTargetAttachment").find(
    ([, r]) => (r.Properties?.SecretId as { Ref?: string })?.Ref === secret[0],
  );
  if (!attachment) throw new Error(`the secret of ${username} is not attached to the instance`);
  return attachment[0];
}
const owner = attachmentOf("chat_admin");
const app = attachmentOf("chat_app");
const envOf = (id: string) =>
  ((resources[id]?.Properties?.Environment as { Variables?: Record<string, unknown> })?.Variables ??
    {}) as Record<string, unknown>;
/** The inline policies on a function's role, as text. */
function policiesOf(id: string): string {
  const role = (resources[id]?.Properties?.Role as { "Fn::GetAtt": string[] } | undefined)?.["Fn::GetAtt"][0];
  return JSON.stringify(
    ofType("AWS::IAM::Policy").filter(([, p]) =>
      ((p.Properties?.Roles ?? []) as { Ref: string }[]).some((r) => r.Ref === role),
    ),
  );
}

describe("database users (aws data plane)", () => {
  it("every function that reaches Postgres connects as the application role and cannot read the owner's secret", () => {
    const users = functions.filter((f) => f.uses?.includes("postgres"));
    expect(users.length).toBeGreaterThan(5);
    for (const f of users) {
      const id = functionLogicalId(s, f.name);
      expect(envOf(id).DATABASE_SECRET_ARN, f.name).toEqual({ Ref: app });
      expect(policiesOf(id), f.name).toContain(`"${app}"`);
      expect(policiesOf(id), f.name).not.toContain(`"${owner}"`);
    }
  });

  it("the deploy-time migrations connect as the owner and create the application role from its secret", () => {
    const [migrator, ...others] = ofType("AWS::Lambda::Function").filter(
      ([id]) => envOf(id).DATABASE_APP_SECRET_ARN !== undefined,
    );
    expect(others).toEqual([]);
    if (!migrator) throw new Error("no function gets DATABASE_APP_SECRET_ARN");
    expect(envOf(migrator[0]).DATABASE_SECRET_ARN).toEqual({ Ref: owner });
    expect(envOf(migrator[0]).DATABASE_APP_SECRET_ARN).toEqual({ Ref: app });
    expect(policiesOf(migrator[0])).toContain(`"${owner}"`);
    expect(policiesOf(migrator[0])).toContain(`"${app}"`);
    // a new application secret re-runs the migrations resource, which creates and grants the role
    const [migration] = Object.values(resourcesOf(s.template, "Custom::ChatMigrations"));
    expect(migration?.Properties?.AppRoleSecret).toEqual({ Ref: app });
  });

  it("the proxy knows both users, and both secrets rotate", () => {
    const [proxy] = ofType("AWS::RDS::DBProxy");
    const auth = (proxy?.[1].Properties?.Auth ?? []) as { SecretArn?: { Ref?: string } }[];
    expect(auth.map((a) => a.SecretArn?.Ref).sort()).toEqual([owner, app].sort());
    const rotated = ofType("AWS::SecretsManager::RotationSchedule").map(
      ([, r]) => (r.Properties?.SecretId as { Ref?: string } | undefined)?.Ref,
    );
    expect(rotated.sort()).toEqual([owner, app].sort());
  });

  // A schedule rotates at once when created, through its rotation function. The application role's logs in as the
  // role, which the migrations create; the owner's would change the password the migrations connect with (the
  // first deploy's migrations would fail on it and the stack roll back).
  it.each([
    ["application role", app],
    ["owner", owner],
  ])("the %s's rotation starts only after the migrations", (_who, secret) => {
    const [migrationId] = Object.keys(resourcesOf(s.template, "Custom::ChatMigrations"));
    const schedule = ofType("AWS::SecretsManager::RotationSchedule").find(
      ([, r]) => (r.Properties?.SecretId as { Ref?: string } | undefined)?.Ref === secret,
    );
    const lambdaArn = JSON.stringify(schedule?.[1].Properties?.RotationLambdaARN ?? "");
    const application = ofType("AWS::Serverless::Application").find(([id]) => lambdaArn.includes(`"${id}"`));
    if (!application) throw new Error("the schedule names no rotation application");
    const dependsOn = (application[1] as { DependsOn?: string[] }).DependsOn ?? [];
    expect(dependsOn).toContain(migrationId);
  });
});
