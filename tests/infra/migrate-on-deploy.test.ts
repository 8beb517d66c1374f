import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CloudFormationCustomResourceEvent } from "aws-lambda";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { migrationDecision, migrationsHash } from "../../infra/handlers/migration-set.ts";

const migrate = vi.fn(async (_url: string, _dir?: string) => ["1732600000000_initial-schema"]);
const createTopics = vi.fn(async (_args: unknown) => true);
const admin = { connect: vi.fn(async () => {}), disconnect: vi.fn(async () => {}), createTopics };
const kafkaConfigs: unknown[] = [];

const grantAppRoleFromSecret = vi.fn(async (_url: string, _arn: string) => "chat_app");
vi.mock("#chat/db/migrate.ts", () => ({ MIGRATIONS_DIR: "/var/task/migrations", migrate }));
vi.mock("#chat/db/app-role.ts", () => ({ grantAppRoleFromSecret }));
// A fresh read (past the secret's cache) returns the rotated password.
const databaseUrl = vi.fn(async (_cfg: unknown, fresh?: boolean) =>
  fresh
    ? "postgres://chat_admin:rotated@db.instance.internal:5432/chat"
    : "postgres://chat_admin:s3cr%40t@db.instance.internal:5432/chat",
);
vi.mock("#chat/db/database-url.ts", () => ({ databaseUrl }));
vi.mock("kafkajs", () => ({
  Kafka: class {
    constructor(config: unknown) {
      kafkaConfigs.push(config);
    }
    admin() {
      return admin;
    }
  },
  logLevel: { NOTHING: 0, ERROR: 1, WARN: 2, INFO: 4, DEBUG: 5 },
}));

const { clientUrl, handler } = await import("../../infra/handlers/migrate-on-deploy.ts");
const { resetConfig } = await import("#chat/config.ts");

const event = (
  type: "Create" | "Update" | "Delete",
  props: Record<string, string> = {},
  oldProps?: Record<string, string>,
) =>
  ({
    RequestType: type,
    PhysicalResourceId: "chat-schema",
    ResourceProperties: { ServiceToken: "arn", ...props },
    ...(oldProps ? { OldResourceProperties: { ServiceToken: "arn", ...oldProps } } : {}),
  }) as unknown as CloudFormationCustomResourceEvent;

// The migrations "in the handler's bundle": MIGRATIONS_DIR points the handler at them.
const bundledDir = mkdtempSync(join(tmpdir(), "bundled-migrations-"));
writeFileSync(join(bundledDir, "1732600000000_initial-schema.sql"), "CREATE TABLE t (id int);");
const bundled = migrationsHash(bundledDir);

describe("migrate-on-deploy", () => {
  beforeEach(() => {
    vi.clearAllMocks();
    vi.spyOn(console, "log").mockImplementation(() => {});
    vi.spyOn(console, "warn").mockImplementation(() => {});
    kafkaConfigs.length = 0;
    for (const k of [
      "DATABASE_HOST",
      "DATABASE_SSL",
      "KAFKA_BROKERS",
      "MSK_CLUSTER_ARN",
      "MIGRATIONS_DIR",
      "DATABASE_APP_SECRET_ARN",
    ])
      delete process.env[k];
    resetConfig();
  });

  it("points the secret's URL at the proxy with verified TLS", () => {
    expect(clientUrl("postgres://u:p%40ss@db.internal:5432/chat", "proxy.example", true)).toBe(
      "postgres://u:p%40ss@proxy.example:5432/chat?sslmode=verify-full",
    );
    expect(clientUrl("postgres://u:p@db:5432/chat", undefined, false)).toBe("postgres://u:p@db:5432/chat");
  });

  it("applies migrations through DATABASE_HOST on create and update", async () => {
    process.env.DATABASE_HOST = "chat-proxy.proxy-abc.us-east-1.rds.amazonaws.com";
    process.env.DATABASE_SSL = "true";
    process.env.MIGRATIONS_DIR = bundledDir;
    for (const type of ["Create", "Update"] as const) {
      const res = await handler(event(type, { MigrationsHash: bundled }));
      expect(res).toEqual({
        PhysicalResourceId: "chat-schema",
        Data: { Applied: "1", TopicCreated: "false" },
      });
    }
    expect(migrate).toHaveBeenCalledTimes(2);
    const [url, dir] = migrate.mock.calls[0] ?? [];
    expect(new URL(url ?? "").hostname).toBe("chat-proxy.proxy-abc.us-east-1.rds.amazonaws.com");
    expect(url).toContain("sslmode=verify-full");
    expect(dir).toBe(bundledDir);
  });

  it("after the migrations, creates and grants the functions' role from its secret, as the owner, when given one", async () => {
    process.env.DATABASE_HOST = "chat-proxy.example";
    const res = await handler(event("Create"));
    expect(grantAppRoleFromSecret).not.toHaveBeenCalled(); // no role secret: one user (the external data plane)
    expect(res.Data?.AppRole).toBeUndefined();

    process.env.DATABASE_APP_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:app-AbCdEf";
    resetConfig();
    const withRole = await handler(event("Update"));
    expect(withRole.Data?.AppRole).toBe("chat_app");
    const [url, arn] = grantAppRoleFromSecret.mock.calls[0] ?? [];
    expect(url).toBe(migrate.mock.calls.at(-1)?.[0]); // the owner's connection, through the proxy
    expect(new URL(url ?? "").username).toBe("chat_admin");
    expect(arn).toBe(process.env.DATABASE_APP_SECRET_ARN);
    expect(grantAppRoleFromSecret.mock.invocationCallOrder[0]).toBeGreaterThan(
      migrate.mock.invocationCallOrder.at(-1) ?? Number.POSITIVE_INFINITY,
    );
  });

  it("without MIGRATIONS_DIR applies the folder next to its bundle", async () => {
    await handler(event("Create"));
    expect(migrate.mock.calls[0]?.[1]).toBe("/var/task/migrations");
  });

  it("creates the topic when Kafka is configured", async () => {
    process.env.KAFKA_BROKERS = "kafka:9092";
    const res = await handler(event("Create", { Topic: "chat-messages", Partitions: "3" }));
    expect(res.Data?.TopicCreated).toBe("true");
    expect(createTopics).toHaveBeenCalledWith(
      expect.objectContaining({
        topics: [{ topic: "chat-messages", numPartitions: 3 }],
        waitForLeaders: true,
      }),
    );
    expect(admin.disconnect).toHaveBeenCalled();
    expect(kafkaConfigs[0]).toMatchObject({ brokers: ["kafka:9092"] });
  });

  it("succeeds without migrating nor creating the topic when CloudFormation rolls back to an older set", async () => {
    process.env.MIGRATIONS_DIR = bundledDir;
    process.env.KAFKA_BROKERS = "kafka:9092";
    process.env.DATABASE_APP_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:app-AbCdEf";
    resetConfig();
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    // The update that brought this handler's set failed; the rollback asks for the previous set.
    const rollback = event(
      "Update",
      { MigrationsHash: "previous-release", Topic: "chat-messages" },
      { MigrationsHash: bundled, Topic: "chat-messages" },
    );
    const res = await handler(rollback);
    expect(res).toEqual({ PhysicalResourceId: "chat-schema", Data: { Applied: "0", TopicCreated: "false" } });
    expect(migrate).not.toHaveBeenCalled();
    expect(createTopics).not.toHaveBeenCalled();
    expect(grantAppRoleFromSecret).not.toHaveBeenCalled();
    expect(String(log.mock.calls.at(-1)?.[0])).toMatch(/skipped.*rollback/);
  });

  it("still migrates and creates the topic when only the database or the cluster changed", async () => {
    process.env.MIGRATIONS_DIR = bundledDir;
    process.env.KAFKA_BROKERS = "kafka:9092";
    const replaced = event(
      "Update",
      { MigrationsHash: bundled, Topic: "chat-messages", KafkaCluster: "arn:new", Database: "arn:db2" },
      { MigrationsHash: bundled, Topic: "chat-messages", KafkaCluster: "arn:old", Database: "arn:db1" },
    );
    const res = await handler(replaced);
    expect(res.Data).toEqual({ Applied: "1", TopicCreated: "true" });
    expect(migrate).toHaveBeenCalledTimes(1);
    expect(createTopics).toHaveBeenCalledTimes(1);
  });

  it("fails, rather than skip, when asked for a set it does not bundle outside a rollback", async () => {
    process.env.MIGRATIONS_DIR = bundledDir;
    await expect(handler(event("Create", { MigrationsHash: "other" }))).rejects.toThrow(/bundles/);
    await expect(
      handler(event("Update", { MigrationsHash: "newer" }, { MigrationsHash: "older" })),
    ).rejects.toThrow(/bundles/);
    expect(migrate).not.toHaveBeenCalled();
  });

  it("decides from the bundled set alone", () => {
    const update = (next?: string, previous?: string) => ({
      RequestType: "Update" as const,
      ResourceProperties: next === undefined ? {} : { MigrationsHash: next },
      OldResourceProperties: previous === undefined ? {} : { MigrationsHash: previous },
    });
    expect(migrationDecision(update("mine", "older"), "mine")).toEqual({ migrate: true });
    expect(migrationDecision(update("mine", "mine"), "mine")).toEqual({ migrate: true });
    expect(migrationDecision(update(undefined, "mine"), "mine")).toEqual({ migrate: true });
    expect(migrationDecision(update("older", "mine"), "mine")).toMatchObject({ migrate: false });
    expect(() => migrationDecision(update("older", "newer"), "mine")).toThrow();
  });

  it("hashes migration names and contents, in name order", () => {
    const dir = mkdtempSync(join(tmpdir(), "migrations-"));
    writeFileSync(join(dir, "2_b.sql"), "B");
    writeFileSync(join(dir, "1_a.sql"), "A");
    const first = migrationsHash(dir);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    writeFileSync(join(dir, "1_a.sql"), "A2");
    expect(migrationsHash(dir)).not.toBe(first);
  });

  it("does nothing on delete: the schema and topic live with the database and cluster", async () => {
    const res = await handler(event("Delete"));
    expect(res).toEqual({ PhysicalResourceId: "chat-schema" });
    expect(migrate).not.toHaveBeenCalled();
  });

  it("retries while the proxy is still registering its target", async () => {
    migrate.mockRejectedValueOnce(new Error("connect ECONNREFUSED 10.0.1.5:5432"));
    const res = await handler(event("Create"));
    expect(res.Data?.Applied).toBe("1");
    expect(migrate).toHaveBeenCalledTimes(2);
  });

  it("retries a refused password with the secret read again: a rotation may have changed it", async () => {
    process.env.DATABASE_APP_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:1:secret:app";
    resetConfig();
    migrate.mockRejectedValueOnce(new Error('password authentication failed for user "chat_admin"'));
    grantAppRoleFromSecret.mockRejectedValueOnce(
      new Error('password authentication failed for user "chat_admin"'),
    );
    const res = await handler(event("Create"));
    expect(res.Data?.Applied).toBe("1");
    expect(migrate.mock.calls.map(([url]) => new URL(url).password)).toEqual(["s3cr%40t", "rotated"]);
    expect(grantAppRoleFromSecret.mock.calls.map(([url]) => new URL(url).password)).toEqual([
      "s3cr%40t",
      "rotated",
    ]);
  });

  it("retries a login the proxy refuses in its own words, by SQLSTATE", async () => {
    migrate.mockRejectedValueOnce(
      Object.assign(new Error("This RDS proxy has no credentials for the role chat_admin"), {
        code: "28000",
      }),
    );
    const res = await handler(event("Create"));
    expect(res.Data?.Applied).toBe("1");
    expect(migrate.mock.calls.map(([url]) => new URL(url).password)).toEqual(["s3cr%40t", "rotated"]);
  });

  it("fails at once on a login refused for good (a missing role), not at the function's timeout", async () => {
    migrate.mockRejectedValueOnce(
      Object.assign(new Error('role "chat_admin" does not exist'), { code: "28000" }),
    );
    await expect(handler(event("Create"))).rejects.toThrow(/does not exist/);
    expect(migrate).toHaveBeenCalledTimes(1);
  });

  it("fails the deploy on a migration error", async () => {
    migrate.mockRejectedValueOnce(new Error('relation "sessions" already exists'));
    await expect(handler(event("Create"))).rejects.toThrow(/already exists/);
    expect(migrate).toHaveBeenCalledTimes(1);
  });
});
