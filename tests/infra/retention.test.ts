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

describe("what the stack keeps, and for how long", () => {
  it("every log group keeps logRetentionDays and goes with the stack", () => {
    const groups = ofType("AWS::Logs::LogGroup");
    expect(groups.length).toBeGreaterThan(15);
    for (const [id, group] of groups) {
      expect(group.Properties?.RetentionInDays, id).toBe(14);
      expect(group.DeletionPolicy, id).toBe("Delete");
    }
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
