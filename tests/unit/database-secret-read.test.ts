import { afterEach, describe, expect, it, vi } from "vitest";

// Secrets Manager answers every read but the first, which never answers (a lost response: the SDK has no timeout).
let reads = 0;
vi.mock("../../layers/chat/secrets.ts", () => ({
  readJsonSecret: vi.fn(() => {
    reads++;
    if (reads === 1) return new Promise(() => {});
    return Promise.resolve({
      host: "db.internal",
      port: 5432,
      username: "chat_app",
      password: "p",
      dbname: "chat",
    });
  }),
}));
const { parseConfig } = await import("../../layers/chat/config.ts");
const { connectionConfig, SECRET_READ_TIMEOUT_MS } = await import("../../layers/chat/db/database-url.ts");

afterEach(() => vi.useRealTimers());

describe("the database secret's read", () => {
  it("fails after its bound instead of waiting for good, and the next read succeeds", async () => {
    vi.useFakeTimers();
    const cfg = parseConfig({
      DATABASE_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf",
    });
    const first = connectionConfig(cfg);
    const failed = expect(first).rejects.toThrow(/not read within/);
    await vi.advanceTimersByTimeAsync(SECRET_READ_TIMEOUT_MS + 1);
    await failed;
    vi.useRealTimers();
    await expect(connectionConfig(cfg)).resolves.toMatchObject({ user: "chat_app", host: "db.internal" });
    expect(reads).toBe(2);
  });
});
