import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { configSchema } from "#chat/config.ts";
import { CHAT_TOPIC } from "#functions/manifest.ts";
import { REPO_ROOT } from "../../infra/paths.ts";

interface Service {
  image?: string;
  ports?: string[];
  profiles?: string[];
  command?: string[] | string;
  environment?: Record<string, string | number>;
  healthcheck?: { test: string[] | string };
  depends_on?: Record<string, { condition: string }>;
}

const compose = parse(readFileSync(join(REPO_ROOT, "docker-compose.yml"), "utf8")) as {
  services: Record<string, Service>;
  networks?: Record<string, { name?: string }>;
};
const { services } = compose;

// The local runner's own variables (HOST, PORT, ...), from the table in local/README.md.
const runnerVariables = [
  ...readFileSync(join(REPO_ROOT, "local/README.md"), "utf8").matchAll(/^\|\s*`([A-Z_]+)`/gm),
].map((m) => m[1]);

describe("docker-compose.yml", () => {
  it("has the data services, the app, a topic init job and LocalStack behind a profile", () => {
    expect(Object.keys(services).sort()).toEqual([
      "app",
      "kafka",
      "kafka-init",
      "localstack",
      "postgres",
      "redis",
    ]);
    expect(services.postgres?.image).toBe("postgres:17");
    expect(services.kafka?.image).toMatch(/^apache\/kafka:/);
    expect(services.app?.image).toMatch(/^node:24/);
    expect(services.localstack?.profiles).toEqual(["localstack"]);
    expect(services.localstack?.environment?.LOCALSTACK_AUTH_TOKEN).toBe(`\${LOCALSTACK_AUTH_TOKEN:-}`);
    expect(services.localstack?.environment?.LAMBDA_DOCKER_NETWORK).toBe(compose.networks?.default?.name);
  });

  it("publishes the expected ports on the host's loopback only", () => {
    // none of them authenticates (the runner's Invoke API, Redis, Kafka's plaintext listener, LocalStack with the
    // Docker socket) or they use compose's fixed password: nothing on the host's network interfaces
    expect(services.postgres?.ports).toEqual(["127.0.0.1:5432:5432"]);
    expect(services.redis?.ports).toEqual(["127.0.0.1:6379:6379"]);
    expect(services.kafka?.ports).toEqual(["127.0.0.1:9094:9094"]);
    expect(services.app?.ports).toEqual(["127.0.0.1:8000:8000"]);
    expect(services.localstack?.ports).toEqual(["127.0.0.1:4566:4566"]);
    for (const [name, svc] of Object.entries(services))
      for (const port of svc.ports ?? []) expect(String(port), name).toMatch(/^127\.0\.0\.1:/);
  });

  it("runs the runner as the app container's main process, so a stop's SIGTERM reaches it", () => {
    const command = services.app?.command ?? [];
    expect(command.at(-1)).toMatch(/&& exec node local\/main\.ts$/);
  });

  it("health-checks every long-running service", () => {
    for (const [name, svc] of Object.entries(services)) {
      if (name === "kafka-init") continue;
      expect(svc.healthcheck?.test, name).toBeDefined();
    }
  });

  it("starts the app only when its dependencies are healthy and the topic exists", () => {
    expect(services.app?.depends_on).toEqual({
      postgres: { condition: "service_healthy" },
      redis: { condition: "service_healthy" },
      kafka: { condition: "service_healthy" },
      "kafka-init": { condition: "service_completed_successfully" },
    });
    expect(services["kafka-init"]?.depends_on).toEqual({ kafka: { condition: "service_healthy" } });
  });

  it("gives the app only variables the code reads, pointing at the compose services", () => {
    const env = services.app?.environment ?? {};
    const known = new Set([...Object.keys(configSchema.shape), ...runnerVariables]);
    expect(runnerVariables).toEqual(expect.arrayContaining(["PORT", "HOST"]));
    expect(Object.keys(env).filter((k) => !known.has(k))).toEqual([]);
    expect(Object.keys(env).filter((k) => !(k in configSchema.shape))).toEqual(["HOST", "PORT"]);
    expect(configSchema.parse(env)).toMatchObject({
      KAFKA_BROKERS: ["kafka:9092"],
      REDIS_URL: "redis://redis:6379",
    });
    expect(String(env.DATABASE_URL)).toMatch(/@postgres:5432\//);
  });

  it("creates the manifest's topic and points the app at it", () => {
    const command = [services["kafka-init"]?.command].flat().join(" ");
    expect(command).toMatch(new RegExp(`--topic ${CHAT_TOPIC}( |$)`));
    expect(services.app?.environment?.KAFKA_TOPIC).toBe(CHAT_TOPIC);
  });
});
