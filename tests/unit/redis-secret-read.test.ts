import { createServer, type Server, type Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";

const PASSWORD = "S3cretRedisPass";
const readJsonSecret = vi.fn<(arn: string, fresh?: boolean) => Promise<unknown>>();
vi.mock("../../layers/chat/secrets.ts", () => ({ readJsonSecret }));
const { resetConfig } = await import("../../layers/chat/config.ts");
const { closeRedis, getRedis, REDIS_SECRET_READ_TIMEOUT_MS } = await import(
  "../../layers/chat/cache/redis-client.ts"
);
const { RateLimiter } = await import("../../layers/chat/ratelimit/rate-limiter.ts");

// A stand-in Redis that answers nothing and keeps what each connection sent (its first command carries AUTH).
let server: Server;
let connections: { socket: Socket; sent: string }[] = [];
beforeAll(async () => {
  server = createServer((socket) => {
    const c = { socket, sent: "" };
    connections.push(c);
    socket.on("data", (d) => {
      c.sent += d.toString();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:redis-AbCdEf";
function useRedis(env: Record<string, string>) {
  const { port } = server.address() as { port: number };
  vi.stubEnv("REDIS_URL", `redis://127.0.0.1:${port}`);
  vi.stubEnv("REDIS_CONNECT_TIMEOUT_MS", "2000");
  for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
  resetConfig();
}

/** Everything the process printed while `work` ran. */
async function printed(work: () => Promise<void>): Promise<string> {
  const out: string[] = [];
  const keep = (...args: unknown[]) => {
    out.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
    return true;
  };
  const spies = [
    ...(["log", "info", "warn", "error", "debug"] as const).map((m) =>
      vi.spyOn(console, m).mockImplementation(keep),
    ),
    vi.spyOn(process.stdout, "write").mockImplementation(keep),
    vi.spyOn(process.stderr, "write").mockImplementation(keep),
  ];
  try {
    await work();
  } finally {
    for (const s of spies) s.mockRestore();
  }
  return out.join("\n");
}

afterEach(async () => {
  vi.useRealTimers();
  await closeRedis();
  for (const c of connections) c.socket.destroy();
  connections = [];
  readJsonSecret.mockReset();
  vi.unstubAllEnvs();
  resetConfig();
});

describe("the Redis secret's read", () => {
  it("comes before any connection, fails after its bound, and the next command reads again", async () => {
    useRedis({ REDIS_SECRET_ARN: ARN });
    readJsonSecret
      .mockImplementationOnce(() => new Promise(() => {})) // a lost response: the SDK has no timeout
      .mockResolvedValue({ username: "chat", password: PASSWORD });
    vi.useFakeTimers();
    const redis = getRedis()!;
    expect(readJsonSecret).toHaveBeenCalledWith(ARN, false); // the cached read
    // Meanwhile a command fails at once, as a cache miss, and opens no connection without the credentials.
    await expect(redis.ping()).rejects.toThrow(/writeable/);
    expect(redis.status).toBe("wait");
    await vi.advanceTimersByTimeAsync(REDIS_SECRET_READ_TIMEOUT_MS + 1);
    vi.useRealTimers();
    expect(readJsonSecret).toHaveBeenCalledTimes(1);
    await expect(redis.ping()).rejects.toThrow(/writeable/);
    await vi.waitFor(() => expect(connections[0]?.sent).toContain("hello"));
    expect(readJsonSecret).toHaveBeenCalledTimes(2);
    expect(connections).toHaveLength(1);
    // ioredis 6 speaks RESP3: HELLO 3 AUTH <username> <password>
    expect(connections[0]?.sent).toMatch(
      /^\*5\r\n\$5\r\nhello\r\n\$1\r\n3\r\n\$4\r\nAUTH\r\n\$4\r\nchat\r\n\$15\r\nS3cretRedisPass\r\n/,
    );
  });

  it("a client only the rate limiter uses reads the secret again after a failed read, and connects", async () => {
    useRedis({ REDIS_SECRET_ARN: ARN });
    readJsonSecret.mockRejectedValueOnce(new Error("throttled")).mockResolvedValue({ password: PASSWORD });
    const redis = getRedis()!;
    await vi.waitFor(() => expect(readJsonSecret).toHaveBeenCalledTimes(1));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(redis.status).toBe("wait");
    // the limiter sends no command to a client that is not ready: it waits for it to be, then falls back
    const limiter = new RateLimiter({ redis: () => redis, timeoutMs: 50, retryRedisAfterMs: 0 });
    await limiter.check([{ policy: { name: "per-ip", limit: 5, windowSeconds: 60 }, key: "k" }]);
    await vi.waitFor(() => expect(connections[0]?.sent).toContain(PASSWORD));
    expect(readJsonSecret).toHaveBeenCalledTimes(2);
  });

  it("gives the password (no username: the default user) to the connection, and prints neither", async () => {
    useRedis({ REDIS_SECRET_ARN: ARN });
    readJsonSecret.mockResolvedValue({ password: PASSWORD });
    const out = await printed(async () => {
      getRedis();
      await vi.waitFor(() => expect(connections[0]?.sent).toContain("hello"));
    });
    expect(connections[0]?.sent).toMatch(
      /^\*5\r\n\$5\r\nhello\r\n\$1\r\n3\r\n\$4\r\nAUTH\r\n\$7\r\ndefault\r\n\$15\r\nS3cretRedisPass\r\n/,
    );
    expect(out).not.toContain(PASSWORD);
  });

  it("reads again for a reconnect, which keeps the credentials it has when that read fails", async () => {
    useRedis({ REDIS_SECRET_ARN: ARN });
    readJsonSecret.mockResolvedValueOnce({ password: PASSWORD }).mockRejectedValue(new Error("throttled"));
    getRedis();
    await vi.waitFor(() => expect(connections[0]?.sent).toContain(PASSWORD));
    connections[0]?.socket.destroy();
    await vi.waitFor(() => expect(connections[1]?.sent).toContain(PASSWORD));
    expect(readJsonSecret).toHaveBeenCalledTimes(2);
  });

  it.each([
    ["without a password", { username: "chat" }],
    ["with an empty password", { username: "chat", password: "" }],
  ])("refuses a secret %s rather than connect without one", async (_, secret) => {
    useRedis({ REDIS_SECRET_ARN: ARN });
    readJsonSecret.mockResolvedValue(secret);
    const redis = getRedis()!;
    await vi.waitFor(() => expect(readJsonSecret).toHaveBeenCalled());
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(redis.status).toBe("wait");
    expect(connections).toHaveLength(0);
  });

  it("opens no connection for a client closed while its secret was read", async () => {
    useRedis({ REDIS_SECRET_ARN: ARN });
    let answer: (v: unknown) => void = () => {};
    readJsonSecret.mockImplementation(() => new Promise((resolve) => (answer = resolve)));
    getRedis();
    await closeRedis();
    answer({ password: PASSWORD });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(connections).toHaveLength(0);
  });

  it("without REDIS_SECRET_ARN reads no secret and connects at once, as before", async () => {
    useRedis({});
    const redis = getRedis()!;
    expect(redis.status).toBe("connecting");
    await vi.waitFor(() => expect(connections[0]?.sent).toContain("hello"));
    expect(connections[0]?.sent).not.toContain("AUTH");
    expect(readJsonSecret).not.toHaveBeenCalled();
  });
});
