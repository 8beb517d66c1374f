import { afterAll, describe, expect, it, vi } from "vitest";

// The first pool fails (as a database secret that cannot be read yet would), every later one works.
let poolCalls = 0;
vi.mock("../../layers/chat/db/pool.ts", () => ({
  getPool: async () => {
    poolCalls++;
    if (poolCalls === 1) throw new Error("secret not readable yet");
    return {};
  },
}));
vi.mock("../../layers/chat/cache/redis-client.ts", () => ({
  getRedis: () => null,
  redisReady: async () => {},
}));
vi.stubEnv("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none");
vi.stubEnv("REDIS_URL", "");
vi.stubEnv("KAFKA_BROKERS", "");
afterAll(() => vi.unstubAllEnvs());

describe("chat-runtime: the process-wide chat service", () => {
  it("is built once and reused, but a build that failed is retried on the next use, not kept as the sandbox's answer", async () => {
    const { getChatService, resetChatRuntime } = await import("../../layers/chat/chat-runtime.ts");
    const { resetConfig } = await import("../../layers/chat/config.ts");
    resetConfig();
    resetChatRuntime();
    await expect(getChatService()).rejects.toThrow("secret not readable yet");
    const service = await getChatService();
    expect(await getChatService()).toBe(service);
    expect(poolCalls).toBe(2);
    resetChatRuntime();
  });
});
