import { describe, expect, it } from "vitest";
import { resourcesOf, type Synth, synth } from "./synth.ts";

type Resource = { Type: string; Properties?: Record<string, unknown>; DependsOn?: string[] };

/** Logical ids a resource names in its properties (Ref, Fn::GetAtt) or its DependsOn. */
function direct(resource: Resource): Set<string> {
  const found = new Set(resource.DependsOn ?? []);
  const walk = (x: unknown): void => {
    if (Array.isArray(x)) for (const v of x) walk(v);
    else if (x && typeof x === "object")
      for (const [k, v] of Object.entries(x)) {
        if (k === "Ref" && typeof v === "string") found.add(v);
        else if (k === "Fn::GetAtt")
          found.add(Array.isArray(v) ? String(v[0]) : (String(v).split(".")[0] ?? ""));
        else walk(v);
      }
  };
  walk(resource.Properties);
  return found;
}

/** Every resource CloudFormation creates or updates before `id` (its dependencies, transitively). */
function before(s: Synth, id: string): Set<string> {
  const all = s.template.toJSON().Resources as Record<string, Resource>;
  const seen = new Set<string>();
  const todo = [id];
  for (let next = todo.pop(); next !== undefined; next = todo.pop()) {
    const resource = all[next];
    if (!resource) continue;
    for (const d of direct(resource))
      if (d in all && !seen.has(d)) {
        seen.add(d);
        todo.push(d);
      }
  }
  return seen;
}

/** The logical id a `{ "Fn::GetAtt": [id, "GroupId"] }` names. */
const groupOf = (v: unknown): string | undefined => (v as { "Fn::GetAtt"?: string[] })?.["Fn::GetAtt"]?.[0];

/** The rules that let a function in `groups` through: ingress from them, egress out of them. */
function rulesFor(s: Synth, groups: string[]): string[] {
  const ingress = Object.entries(resourcesOf(s.template, "AWS::EC2::SecurityGroupIngress"))
    .filter(([, r]) => groups.includes(groupOf(r.Properties?.SourceSecurityGroupId) ?? ""))
    .map(([id]) => id);
  const egress = Object.entries(resourcesOf(s.template, "AWS::EC2::SecurityGroupEgress"))
    .filter(([, r]) => groups.includes(groupOf(r.Properties?.GroupId) ?? ""))
    .map(([id]) => id);
  return [...ingress, ...egress];
}

function vpcFunctions(s: Synth): [string, string[]][] {
  return Object.entries(resourcesOf(s.template, "AWS::Lambda::Function")).flatMap(([id, r]) => {
    const vpc = r.Properties?.VpcConfig as { SecurityGroupIds: unknown[] } | undefined;
    return vpc ? [[id, vpc.SecurityGroupIds.map((g) => groupOf(g) ?? "")] as [string, string[]]] : [];
  });
}

describe("aws variant: deploying onto a running stack", () => {
  const s = synth();

  // A deploy that moves a function onto a new client group creates that group, the proxy's or cache's rule
  // admitting it, and updates the function, in whatever order their dependencies allow: unordered, the function
  // could serve from the new group before the proxy admits it (connect timeouts, 503s).
  it("updates no function before every rule that admits its security groups exists (bug 245)", () => {
    const [migrations] = Object.keys(resourcesOf(s.template, "Custom::ChatMigrations"));
    expect(migrations).toBeDefined();
    const fns = vpcFunctions(s);
    expect(fns.length).toBeGreaterThan(5);
    for (const [id, groups] of fns) {
      // The migration handler serves nothing until the custom resource invokes it.
      const runs = id.startsWith("MigrationsHandler") && migrations ? migrations : id;
      const rules = rulesFor(s, groups);
      expect(rules.length, id).toBeGreaterThan(0);
      const earlier = before(s, runs);
      expect(
        rules.filter((r) => !earlier.has(r)),
        id,
      ).toEqual([]);
    }
  });

  // The functions' one group until 2026-11-29, as deployed: its logical id is the stack's, not a hash to recompute.
  const retired = "DataPlaneAwsNetworkFunctionSg19823B6D";

  it("keeps the functions' former security group, unchanged and unused, instead of deleting it under Lambda's network interfaces (bug 246)", () => {
    const groups = resourcesOf(s.template, "AWS::EC2::SecurityGroup");
    expect(groups[retired]?.Properties).toEqual({
      GroupDescription: "chat functions: egress to proxy, cache, brokers and endpoints only",
      VpcId: { Ref: expect.stringMatching(/^DataPlaneAwsNetworkVpc[0-9A-F]{8}$/) },
      Tags: [{ Key: "app", Value: "chat-backend" }],
    });
    for (const [id, g] of vpcFunctions(s)) expect(g, id).not.toContain(retired);
    expect(rulesFor(s, [retired])).toEqual([]);
  });
});
