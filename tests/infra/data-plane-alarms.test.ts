import type { Template } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { EXTERNAL_CONTEXT, resourcesOf, synth } from "./synth.ts";

const s = synth();
const onlyId = (template: Template, type: string) => {
  const ids = Object.keys(resourcesOf(template, type));
  expect(ids, type).toHaveLength(1);
  return ids[0] as string;
};
const instanceOf = (template: Template) =>
  Object.values(resourcesOf(template, "AWS::RDS::DBInstance"))[0]?.Properties ?? {};
const alarmsOf = (template: Template) =>
  Object.values(resourcesOf(template, "AWS::CloudWatch::Alarm")).map((a) => a.Properties ?? {});

/** The one alarm on this metric: it must notify the health alarms' topic, and again when it is OK. */
function alarmOn(template: Template, metricName: string) {
  const topicId = onlyId(template, "AWS::SNS::Topic");
  const found = alarmsOf(template).filter((a) => a.MetricName === metricName);
  expect(found, metricName).toHaveLength(1);
  const props = found[0] ?? {};
  expect(props.AlarmActions, metricName).toEqual([{ Ref: topicId }]);
  expect(props.OKActions, metricName).toEqual([{ Ref: topicId }]);
  expect(props.TreatMissingData, metricName).toBe("notBreaching");
  return props;
}

describe("aws data plane alarms", () => {
  it("Postgres storage: FreeStorageSpace of the instance under 2 GiB for 30 minutes", () => {
    const instanceId = onlyId(s.template, "AWS::RDS::DBInstance");
    const alarm = alarmOn(s.template, "FreeStorageSpace");
    expect(alarm).toMatchObject({
      Namespace: "AWS/RDS",
      Dimensions: [{ Name: "DBInstanceIdentifier", Value: { Ref: instanceId } }],
      Statistic: "Minimum",
      Period: 300,
      EvaluationPeriods: 6,
      DatapointsToAlarm: 6,
      Threshold: 2 * 1024 ** 3,
      ComparisonOperator: "LessThanThreshold",
    });
    expect(alarm.AlarmDescription).toMatch(/less than 2 GiB free for 30 minutes/);
    // 2 GiB is 10 % of the first allocation, where storage autoscaling starts
    const instance = instanceOf(s.template);
    expect(instance).toMatchObject({ AllocatedStorage: "20", MaxAllocatedStorage: 100 });
  });

  it("Postgres CPU credits on the default burstable class: the hourly maximum under 20 for 3 hours", () => {
    const instanceId = onlyId(s.template, "AWS::RDS::DBInstance");
    const instance = instanceOf(s.template);
    expect(instance.DBInstanceClass).toBe("db.t4g.micro");
    const alarm = alarmOn(s.template, "CPUCreditBalance");
    expect(alarm).toMatchObject({
      Namespace: "AWS/RDS",
      Dimensions: [{ Name: "DBInstanceIdentifier", Value: { Ref: instanceId } }],
      Statistic: "Maximum",
      Period: 3600,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      Threshold: 20,
      ComparisonOperator: "LessThanThreshold",
    });
    expect(alarm.AlarmDescription).toMatch(/t4g\.micro.*fewer than 20 CPU credits for 3 hours/);
  });

  it("no CPU credit alarm for a class without credits, the other alarms stay", () => {
    const fixed = synth({ dbInstanceType: "m7g.large" });
    const instance = instanceOf(fixed.template);
    expect(instance.DBInstanceClass).toBe("db.m7g.large");
    const metrics = alarmsOf(fixed.template).map((a) => a.MetricName);
    expect(metrics).not.toContain("CPUCreditBalance");
    expect(metrics).toEqual(
      expect.arrayContaining([
        "FreeStorageSpace",
        "DatabaseConnectionsBorrowLatency",
        "ThrottledCmds",
        "BytesUsedForCache",
      ]),
    );
  });

  it("RDS Proxy saturation: average borrow latency over 100 ms for 15 minutes, on this proxy", () => {
    const proxyId = onlyId(s.template, "AWS::RDS::DBProxy");
    const alarm = alarmOn(s.template, "DatabaseConnectionsBorrowLatency");
    expect(alarm).toMatchObject({
      Namespace: "AWS/RDS",
      Dimensions: [{ Name: "ProxyName", Value: { Ref: proxyId } }],
      Statistic: "Average",
      Period: 300,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      Threshold: 100_000, // microseconds
      ComparisonOperator: "GreaterThanThreshold",
    });
    expect(alarm.AlarmDescription).toMatch(/more than 100 ms .* for 15 minutes/);
  });

  it("Valkey throttling: ThrottledCmds in three 5-minute periods in a row, under the serverless clusterId", () => {
    const cacheId = onlyId(s.template, "AWS::ElastiCache::ServerlessCache");
    const alarm = alarmOn(s.template, "ThrottledCmds");
    expect(alarm).toMatchObject({
      Namespace: "AWS/ElastiCache",
      // serverless caches publish under clusterId, not the node-based caches' CacheClusterId
      Dimensions: [{ Name: "clusterId", Value: { Ref: cacheId } }],
      Statistic: "Sum",
      Period: 300,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
    });
    expect(alarm.AlarmDescription).toMatch(/15000 ECPU\/s limit/);
  });

  it("Valkey storage: BytesUsedForCache over 80 % of the cache's data storage limit for 15 minutes", () => {
    const cacheId = onlyId(s.template, "AWS::ElastiCache::ServerlessCache");
    const cache =
      Object.values(resourcesOf(s.template, "AWS::ElastiCache::ServerlessCache"))[0]?.Properties ?? {};
    const limit = (cache.CacheUsageLimits as { DataStorage: { Maximum: number; Unit: string } }).DataStorage;
    expect(limit).toEqual({ Maximum: 5, Unit: "GB" });
    const alarm = alarmOn(s.template, "BytesUsedForCache");
    expect(alarm).toMatchObject({
      Namespace: "AWS/ElastiCache",
      Dimensions: [{ Name: "clusterId", Value: { Ref: cacheId } }],
      Statistic: "Maximum",
      Period: 300,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      Threshold: limit.Maximum * 0.8 * 1e9,
      ComparisonOperator: "GreaterThanThreshold",
    });
    expect(alarm.AlarmDescription).toMatch(/more than 80 % of its 5 GB limit for 15 minutes/);
  });

  it("none on MSK: the cluster is serverless (no brokers or disks), and the consumer's lag has its own", () => {
    expect(resourcesOf(s.template, "AWS::MSK::Cluster")).toEqual({});
    onlyId(s.template, "AWS::MSK::ServerlessCluster");
    expect(alarmsOf(s.template).filter((a) => a.Namespace === "AWS/Kafka")).toEqual([]);
    expect(alarmsOf(s.template).map((a) => a.MetricName)).toContain("OffsetLag");
  });

  it("every data plane alarm needs its condition for 15 minutes or more", () => {
    const dataPlane = alarmsOf(s.template).filter((a) =>
      ["AWS/RDS", "AWS/ElastiCache"].includes(String(a.Namespace)),
    );
    expect(dataPlane).toHaveLength(5);
    for (const a of dataPlane) {
      expect(Number(a.Period) * Number(a.EvaluationPeriods), String(a.MetricName)).toBeGreaterThanOrEqual(
        900,
      );
      expect(a.DatapointsToAlarm, String(a.MetricName)).toBe(a.EvaluationPeriods);
    }
  });
});

describe("external data plane alarms", () => {
  it("has no managed resource, so no database, proxy or cache alarm", () => {
    const ext = synth(EXTERNAL_CONTEXT);
    const namespaces = alarmsOf(ext.template).map((a) => a.Namespace);
    expect(namespaces).not.toContain("AWS/RDS");
    expect(namespaces).not.toContain("AWS/ElastiCache");
    // the stack's own alarms are still there
    expect(alarmsOf(ext.template).map((a) => a.MetricName)).toContain("HealthCheckFailed");
  });
});
