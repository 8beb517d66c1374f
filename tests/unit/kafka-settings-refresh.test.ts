import { afterEach, describe, expect, it, vi } from "vitest";

// The SCRAM secret as Secrets Manager holds it right now (a rotation changes it).
let password = "v1";
vi.mock("../../layers/chat/secrets.ts", () => ({
  readJsonSecret: vi.fn(async () => ({ username: "chat", password })),
}));
const { parseConfig } = await import("../../layers/chat/config.ts");
const { producerSettings, SCRAM_SETTINGS_MAX_AGE_MS } = await import(
  "../../layers/chat/events/kafka-runtime.ts"
);

afterEach(() => vi.useRealTimers());

describe("Kafka producer settings in a warm sandbox", () => {
  it("re-read a rotated SCRAM password once their age is past the secret cache's, not before", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const cfg = parseConfig({
      KAFKA_BROKERS: "broker-1:9096",
      KAFKA_AUTH: "scram-sha-512",
      KAFKA_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:000000000000:secret:kafka-AbCdEf",
    });
    expect((await producerSettings(cfg)).scram?.password).toBe("v1");
    password = "v2"; // rotated
    vi.setSystemTime(Date.now() + SCRAM_SETTINGS_MAX_AGE_MS - 1000);
    expect((await producerSettings(cfg)).scram?.password).toBe("v1");
    vi.setSystemTime(Date.now() + 2000);
    expect((await producerSettings(cfg)).scram?.password).toBe("v2");
  });
});
