import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { closeRedis, getRedis } from "../../layers/chat/cache/redis-client.ts";
import { resetConfig } from "../../layers/chat/config.ts";
import { SHARED_REDIS_URL } from "../helpers/chat-fixture.ts";
import { startTcpProxy, type TcpProxy } from "../reliability/support/tcp-proxy.ts";

// The product's Redis client fails a command whose connection dropped, and never sends it again once it has
// reconnected: a cache write the caller already gave up on (and may have recorded as an invalidation) must not
// land later. ioredis's default (maxRetriesPerRequest 20) would resend it on the new connection.
let proxy: TcpProxy;
beforeAll(async () => {
  proxy = await startTcpProxy(Number(new URL(SHARED_REDIS_URL).port || 6379));
  // a long command timeout, so that only the dropped connection can end the command
  vi.stubEnv("REDIS_URL", proxy.url("redis"));
  vi.stubEnv("REDIS_COMMAND_TIMEOUT_MS", "10000");
  vi.stubEnv("REDIS_CONNECT_TIMEOUT_MS", "1000");
  resetConfig();
});
afterAll(async () => {
  await closeRedis();
  await proxy.close();
  vi.unstubAllEnvs();
  resetConfig();
});

const ready = (client: NonNullable<ReturnType<typeof getRedis>>) =>
  client.status === "ready" ? Promise.resolve() : new Promise((r) => client.once("ready", r));

describe("the Redis client on a dropped connection", () => {
  it("fails the command in flight at once and does not resend it after reconnecting", async () => {
    const client = getRedis();
    if (!client) throw new Error("REDIS_URL is set: expected a client");
    await ready(client);
    const key = `late-retry:${randomUUID()}`;
    proxy.stall(); // the SET below reaches the proxy but not Redis
    const write = client.set(key, "late", "EX", 60);
    const outcome = write.then(
      () => "applied",
      (err: Error) => err.name,
    );
    await proxy.cut();
    await proxy.restore(); // the client can reconnect at once
    expect(await outcome).toBe("MaxRetriesPerRequestError");
    await ready(client);
    await client.ping(); // the new connection has sent whatever it was going to send first
    const direct = new Redis(SHARED_REDIS_URL);
    try {
      expect(await direct.get(key)).toBeNull();
    } finally {
      direct.disconnect();
    }
  });
});
