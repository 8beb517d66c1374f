import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CONTEXT_KEYS, readContext } from "../../infra/context.ts";
import { REPO_ROOT } from "../../infra/paths.ts";

const ctx = (values: Record<string, unknown>) =>
  readContext({ tryGetContext: (k: string) => values[k], getAllContext: () => values });

describe("context", () => {
  it("defaults to the aws data plane with the dependencies layer", () => {
    expect(ctx({})).toMatchObject({
      dataPlane: "aws",
      layerMode: "layer",
      corsOrigins: [],
      logRetentionDays: 30,
    });
  });

  it("parses -c strings and cdk.json values alike", () => {
    expect(
      ctx({
        corsOrigins: "https://a.example, https://b.example",
        dbMultiAz: "true",
        throttleRateLimit: "20",
      }),
    ).toMatchObject({
      corsOrigins: ["https://a.example", "https://b.example"],
      dbMultiAz: true,
      throttleRateLimit: 20,
    });
    expect(ctx({ corsOrigins: ["https://a.example"], dbMultiAz: true })).toMatchObject({
      corsOrigins: ["https://a.example"],
      dbMultiAz: true,
    });
  });

  it("reads sessionRetentionDays as whole days, 0 (keep sessions) by default", () => {
    expect(ctx({}).sessionRetentionDays).toBe(0);
    expect(ctx({ sessionRetentionDays: "30" }).sessionRetentionDays).toBe(30);
    expect(ctx({ sessionRetentionDays: 90 }).sessionRetentionDays).toBe(90);
    expect(() => ctx({ sessionRetentionDays: "1.5" })).toThrow(/whole number/);
    expect(() => ctx({ sessionRetentionDays: "-1" })).toThrow(/non-negative/);
    expect(ctx({ sessionRetentionDays: "36500" }).sessionRetentionDays).toBe(36500);
    expect(() => ctx({ sessionRetentionDays: "99999999" })).toThrow(/at most 36500/);
  });

  it("reads availabilityZones as a list of two or more distinct names", () => {
    expect(ctx({}).availabilityZones).toBeUndefined();
    expect(ctx({ availabilityZones: "us-east-1a, us-east-1c" }).availabilityZones).toEqual([
      "us-east-1a",
      "us-east-1c",
    ]);
    expect(() => ctx({ availabilityZones: "us-east-1a" })).toThrow(/availabilityZones/);
    expect(() => ctx({ availabilityZones: "us-east-1a,us-east-1a" })).toThrow(/availabilityZones/);
  });

  it("has docs/deploy.md's defaults, real handlers included", () => {
    expect(ctx({})).toMatchObject({
      responder: "builtin",
      healthLatencyThresholdMs: 2000,
      kafkaPartitions: 6,
      dbMultiAz: false,
      deletionProtection: false,
      tracing: false,
      // the stub handler is for tests only: a deploy must never ship it
      stubHandlers: false,
    });
  });

  it("reads 1/0 as booleans and an empty value as unset", () => {
    expect(ctx({ dbMultiAz: "1", tracing: "0" })).toMatchObject({ dbMultiAz: true, tracing: false });
    expect(ctx({ logRetentionDays: "", alarmEmail: "" })).toMatchObject({
      logRetentionDays: 30,
      alarmEmail: undefined,
    });
    expect(ctx({ corsOrigins: "https://a.example,, " }).corsOrigins).toEqual(["https://a.example"]);
  });

  it("takes 0 where it means off, and refuses a number that is not one", () => {
    expect(ctx({ dbSecretRotationDays: "0" }).dbSecretRotationDays).toBe(0);
    expect(ctx({ sessionRetentionDays: "0" }).sessionRetentionDays).toBe(0);
    expect(() => ctx({ throttleRateLimit: "fast" })).toThrow(/throttleRateLimit/);
    expect(() => ctx({ healthLatencyThresholdMs: "Infinity" })).toThrow(/healthLatencyThresholdMs/);
  });

  it("refuses a 0 that is no off switch: a stage throttle of 0 answers every request 429, a 0 threshold always alarms", () => {
    for (const key of [
      "throttleRateLimit",
      "throttleBurstLimit",
      "http5xxThreshold",
      "healthLatencyThresholdMs",
    ])
      expect(() => ctx({ [key]: "0" }), key).toThrow(key);
    // API Gateway's burst is an integer (CloudFormation refuses 1.5 at deploy time, after the data plane is built)
    expect(() => ctx({ throttleBurstLimit: "1.5" })).toThrow(/throttleBurstLimit/);
    expect(ctx({ throttleRateLimit: "0.5", throttleBurstLimit: "1" })).toMatchObject({
      throttleRateLimit: 0.5,
      throttleBurstLimit: 1,
    });
  });

  it("refuses a context key the app does not read, which would deploy its default silently", () => {
    expect(() => ctx({ sessionRetentionDay: "30" })).toThrow(/unknown context sessionRetentionDay/);
    expect(() => ctx({ corsOrigin: "https://app.example" })).toThrow(/corsOrigin\b/);
    // CDK's own keys: feature flags, its settings, cached lookups, `cdk acknowledge`
    expect(
      ctx({
        "@aws-cdk/aws-iam:minimizePolicies": true,
        "aws:cdk:bundling-stacks": [],
        "availability-zones:account=000000000000:region=us-east-1": ["us-east-1a"],
        "acknowledged-issue-numbers": [1234],
        stackName: "Chat2",
      }).dataPlane,
    ).toBe("aws");
  });

  it("reads only keys docs/deploy.md names", () => {
    const deploy = readFileSync(join(REPO_ROOT, "docs/deploy.md"), "utf8");
    const undocumented = CONTEXT_KEYS.filter((k) => k !== "stubHandlers" && !deploy.includes(`\`${k}\``));
    expect(undocumented).toEqual([]);
  });

  it("refuses a topic partition count Kafka would refuse at deploy time", () => {
    expect(ctx({ kafkaPartitions: "12" }).kafkaPartitions).toBe(12);
    expect(() => ctx({ kafkaPartitions: "1.5" })).toThrow(/kafkaPartitions/);
    expect(() => ctx({ kafkaPartitions: "0" })).toThrow(/kafkaPartitions/);
  });

  it("takes a topic name Kafka takes, up to its 249 characters, and refuses . and .. (Kafka does)", () => {
    expect(ctx({}).kafkaTopic).toBe("chat-messages");
    const longest = `s.${"a".repeat(244)}_-9`;
    expect(longest).toHaveLength(249);
    expect(ctx({ kafkaTopic: longest }).kafkaTopic).toBe(longest);
    expect(() => ctx({ kafkaTopic: `${longest}Z` })).toThrow(/kafkaTopic/);
    expect(ctx({ kafkaTopic: "..." }).kafkaTopic).toBe("...");
    for (const bad of [".", "..", "staging chat", "chat/", "/chat", "chät"])
      expect(() => ctx({ kafkaTopic: bad }), bad).toThrow(/kafkaTopic/);
  });

  it("has defaults for the alarm thresholds", () => {
    expect(ctx({})).toMatchObject({
      http5xxThreshold: 5,
      offsetLagThreshold: 1000,
      outboxPendingAgeThresholdSeconds: 300,
    });
    expect(ctx({ offsetLagThreshold: "50" }).offsetLagThreshold).toBe(50);
  });

  it("rejects bad values, naming the key", () => {
    expect(() => ctx({ layerMode: "zip" })).toThrow(/layerMode/);
    expect(() => ctx({ dbMultiAz: "yes" })).toThrow(/dbMultiAz/);
    expect(() => ctx({ dataPlane: "external" })).toThrow(/databaseSecretArn/);
  });

  it("reads the external endpoints", () => {
    expect(
      ctx({
        dataPlane: "external",
        databaseSecretArn: "arn:s",
        redisUrl: "redis://r:6379",
        kafkaBrokers: "k1:9092,k2:9092",
      }).external,
    ).toEqual({
      databaseSecretArn: "arn:s",
      databaseUrl: undefined,
      databaseSsl: true,
      redisUrl: "redis://r:6379",
      redisSecretArn: undefined,
      redisTls: true,
      kafkaBrokers: ["k1:9092", "k2:9092"],
      kafkaSsl: true,
      kafkaSecretArn: undefined,
    });
  });

  const external = { dataPlane: "external", databaseSecretArn: "arn:s" };

  it("drops databaseUrl when a secret is given: the URL's password would sit in every function's environment", () => {
    const both = ctx({ ...external, databaseUrl: "postgres://chat:pw@db:5432/chat" }).external;
    expect(both).toMatchObject({ databaseSecretArn: "arn:s", databaseUrl: undefined });
    expect(ctx({ dataPlane: "external", databaseUrl: "postgres://db/chat" }).external?.databaseUrl).toBe(
      "postgres://db/chat",
    );
  });

  it("encrypts the external endpoints unless TLS is turned off explicitly", () => {
    expect(ctx(external).external).toMatchObject({ databaseSsl: true, redisTls: true, kafkaSsl: true });
    expect(
      ctx({ ...external, databaseSsl: "false", redisTls: "false", kafkaSsl: false }).external,
    ).toMatchObject({ databaseSsl: false, redisTls: false, kafkaSsl: false });
  });

  it("refuses Redis credentials in redisUrl, in any form ioredis reads, without echoing them", () => {
    for (const redisUrl of [
      "redis://:pw-1@r:6379",
      "rediss://chat:pw-1@r:6379",
      "chat:pw-1@r:6379",
      "//:pw-1@r:6379",
      "redis://r:6379?password=pw-1",
      "redis://r:6379/0?username=chat&password=pw-1",
    ]) {
      expect(() => ctx({ ...external, redisUrl }), redisUrl).toThrow(/redisUrl must not carry credentials/);
      expect(() => ctx({ ...external, redisUrl }), redisUrl).not.toThrow(/pw-1/);
    }
    expect(ctx({ ...external, redisUrl: "r:6379" }).external?.redisUrl).toBe("r:6379");
  });

  it("refuses a redisUrl that selects a database other than 0, which a cluster-mode cache does not have", () => {
    for (const redisUrl of ["rediss://r:6379/1", "redis://r:6379/15", "r:6379/2", "rediss://r:6379?db=3"])
      expect(() => ctx({ ...external, redisUrl }), redisUrl).toThrow(/redisUrl selects database .* 0 only/);
    for (const redisUrl of ["rediss://r:6379", "rediss://r:6379/", "rediss://r:6379/0", "r:6379?db=0"])
      expect(ctx({ ...external, redisUrl }).external?.redisUrl, redisUrl).toBe(redisUrl);
  });

  it("takes the Redis credentials' secret, which needs the Redis it is for", () => {
    expect(
      ctx({ ...external, redisUrl: "rediss://r:6379", redisSecretArn: "arn:redis" }).external,
    ).toMatchObject({ redisUrl: "rediss://r:6379", redisSecretArn: "arn:redis" });
    expect(() => ctx({ ...external, redisSecretArn: "arn:redis" })).toThrow(
      /redisSecretArn needs -c redisUrl/,
    );
  });
});
