import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

// The SCRAM secret as Secrets Manager holds it right now (a rotation changes it).
let password = "v1";
let reads = 0;
vi.mock("../../layers/chat/secrets.ts", () => ({
  readJsonSecret: vi.fn(async () => {
    reads++;
    if (password === "unreadable") throw new Error("Secrets Manager is unavailable (test)");
    return { username: "chat", password };
  }),
}));
const { parseConfig } = await import("../../layers/chat/config.ts");
const { SCRAM_SETTINGS_MAX_AGE_MS } = await import("../../layers/chat/events/kafka-runtime.ts");
type Runtime = typeof import("../../layers/chat/events/kafka-runtime.ts");
let producerSettings: Runtime["producerSettings"];

// each test is a new sandbox (no settings read yet, the secret as first stored), so they pass in any order
beforeEach(async () => {
  password = "v1";
  reads = 0;
  vi.resetModules();
  ({ producerSettings } = (await import("../../layers/chat/events/kafka-runtime.ts")) as Runtime);
});
afterEach(() => vi.useRealTimers());

const cfg = parseConfig({
  KAFKA_BROKERS: "broker-1:9096",
  KAFKA_AUTH: "scram-sha-512",
  KAFKA_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:000000000000:secret:kafka-AbCdEf",
});

describe("Kafka producer settings in a warm sandbox", () => {
  it("re-read a rotated SCRAM password once their age is past the secret cache's, not before", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    expect((await producerSettings(cfg)).scram?.password).toBe("v1");
    password = "v2"; // rotated
    vi.setSystemTime(Date.now() + SCRAM_SETTINGS_MAX_AGE_MS - 1000);
    expect((await producerSettings(cfg)).scram?.password).toBe("v1");
    vi.setSystemTime(Date.now() + 2000);
    // the re-read runs in the background: this call still gets the settings in use, the next the new ones
    expect((await producerSettings(cfg)).scram?.password).toBe("v1");
    await vi.waitFor(async () => expect((await producerSettings(cfg)).scram?.password).toBe("v2"));
  });

  it("keep the settings in use when a re-read fails, and try again later", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const inUse = (await producerSettings(cfg)).scram?.password;
    password = "unreadable";
    const readsBefore = reads;
    vi.setSystemTime(Date.now() + 10 * SCRAM_SETTINGS_MAX_AGE_MS); // past any earlier read's age
    expect((await producerSettings(cfg)).scram?.password).toBe(inUse);
    await new Promise((r) => setTimeout(r, 10)); // the failed re-read settles
    expect(reads).toBe(readsBefore + 1);
    expect((await producerSettings(cfg)).scram?.password).toBe(inUse);
    expect(reads).toBe(readsBefore + 1); // the next try waits
  });
});
