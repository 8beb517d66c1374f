import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { synth } from "./synth.ts";

type Resource = {
  Type: string;
  Properties?: Record<string, unknown>;
  DeletionPolicy?: string;
  DependsOn?: string[];
};

// A retention other than the default, so a group that ignores the context shows.
const s = synth({ logRetentionDays: "14" });
const resources = s.template.toJSON().Resources as Record<string, Resource>;
const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);

/** README's list of what an erase cannot reach ("Deleting, editing, erasing"): what a user is told stays. */
const outsideReach =
  /^- Outside the API's reach:[\s\S]*?(?=\n- )/m.exec(
    readFileSync(new URL("../../README.md", import.meta.url), "utf8"),
  )?.[0] ?? "";

describe("what the stack keeps, and for how long", () => {
  it("every log group keeps logRetentionDays and goes with the stack", () => {
    const groups = ofType("AWS::Logs::LogGroup");
    expect(groups.length).toBeGreaterThan(15);
    for (const [id, group] of groups) {
      expect(group.Properties?.RetentionInDays, id).toBe(14);
      expect(group.DeletionPolicy, id).toBe("Delete");
    }
  });

  it("API Gateway's access log keeps who sent each request and nothing of its content, and README says so", () => {
    const stages = ofType("AWS::ApiGatewayV2::Stage");
    expect(stages).toHaveLength(1);
    const settings = stages[0]?.[1].Properties?.AccessLogSettings as { Format: string };
    const fields = Object.values(JSON.parse(settings.Format) as Record<string, string>);
    // no path (it names the session), query string, header, body or authorizer output (a token's claims)
    for (const v of fields) expect(v).not.toMatch(/path|querystring|header|body|authorizer/i);
    // what identifies the client, kept logRetentionDays whatever the session's erase: the README must say so
    // (the user agent left with bug 179: a client sets its size)
    expect(fields.filter((v) => v.startsWith("$context.identity.")).sort()).toEqual([
      "$context.identity.sourceIp",
    ]);
    expect(outsideReach).toContain("access log");
    expect(outsideReach).toContain("IP address");
  });

  it("refuses a logRetentionDays CloudWatch does not offer, at synth rather than at deploy", () => {
    expect(() => synth({ logRetentionDays: "31" })).toThrow(/logRetentionDays 31/);
  });

  it("the VPC's rejected-traffic flow logs go to such a group", () => {
    const flowLogs = ofType("AWS::EC2::FlowLog").map(([, r]) => r.Properties ?? {});
    expect(flowLogs).toHaveLength(1);
    const target = (flowLogs[0]?.LogGroupName as { Ref?: string } | undefined)?.Ref ?? "";
    expect(resources[target]?.Type).toBe("AWS::Logs::LogGroup");
    expect(flowLogs[0]?.TrafficType).toBe("REJECT");
  });

  it("the alarm topic's key is deleted with the stack, after KMS's shortest waiting period", () => {
    const keys = ofType("AWS::KMS::Key");
    expect(keys).toHaveLength(1);
    for (const [id, key] of keys) {
      expect(key.DeletionPolicy, id).toBe("Delete");
      expect(key.Properties?.PendingWindowInDays, id).toBe(7);
    }
  });
});
