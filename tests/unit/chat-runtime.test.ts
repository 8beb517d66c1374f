import { afterAll, describe, expect, it, vi } from "vitest";

// A pool that fails while `poolFails` is set (as a database secret that cannot be read yet would).
let poolCalls = 0;
let poolFails = false;
vi.mock("../../layers/chat/db/pool.ts", () => ({
  getPool: async () => {
    poolCalls++;
    if (poolFails) {
      poolFails = false;
      throw new Error("secret not readable yet");
    }
    return {};
  },
}));
// No Redis, unless a test sets one (a stand-in: the cache only defines its scripts at build).
const redisMock = vi.hoisted(() => ({
  client: null as object | null,
  ready: vi.fn(async (_client: object, _timeoutMs: number) => {}),
}));
vi.mock("../../layers/chat/cache/redis-client.ts", () => ({
  getRedis: () => redisMock.client,
  redisReady: redisMock.ready,
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
    poolFails = true;
    poolCalls = 0;
    await expect(getChatService()).rejects.toThrow("secret not readable yet");
    const service = await getChatService();
    expect(await getChatService()).toBe(service);
    expect(poolCalls).toBe(2);
    resetChatRuntime();
  });

  it("waits (bounded) for Redis's first connection before the first request uses the cache", async () => {
    const { getChatService, resetChatRuntime } = await import("../../layers/chat/chat-runtime.ts");
    const { config, resetConfig } = await import("../../layers/chat/config.ts");
    resetConfig();
    resetChatRuntime();
    let connected!: () => void;
    redisMock.client = { defineCommand: () => {}, status: "connecting" };
    redisMock.ready.mockImplementationOnce(() => new Promise<void>((r) => (connected = r)));
    try {
      let built = false;
      const service = getChatService().then(() => (built = true));
      await vi.waitFor(() => expect(redisMock.ready).toHaveBeenCalled());
      await new Promise((r) => setImmediate(r));
      expect(built).toBe(false);
      expect(redisMock.ready).toHaveBeenCalledWith(redisMock.client, config().REDIS_CONNECT_TIMEOUT_MS * 4);
      connected();
      await service;
      expect(built).toBe(true);
    } finally {
      redisMock.client = null;
      resetChatRuntime();
    }
  });
});
