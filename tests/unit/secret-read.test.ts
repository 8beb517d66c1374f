import { afterEach, describe, expect, it, vi } from "vitest";

// Powertools' Secrets Manager reader, as the SDK's boundary: what is asked of it, and a read that never answers.
const getSecret = vi.fn();
vi.mock("@aws-lambda-powertools/parameters/secrets", () => ({ getSecret }));
const { readJsonSecret } = await import("../../layers/chat/secrets.ts");
const { readJsonSecretBounded, SECRET_READ_TIMEOUT_MS } = await import(
  "../../layers/chat/bounded-secret-read.ts"
);

const ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf";

afterEach(() => {
  getSecret.mockReset();
  vi.useRealTimers();
});

describe("readJsonSecret", () => {
  it("parses the secret as JSON and caches it, for at most 5 minutes so a rotation reaches new readers", async () => {
    getSecret.mockResolvedValue({ password: "p" });
    expect(await readJsonSecret(ARN)).toEqual({ password: "p" });
    const [arn, options] = getSecret.mock.calls[0] as [string, { transform?: string; maxAge?: number }];
    expect(arn).toBe(ARN);
    expect(options).toMatchObject({ transform: "json", forceFetch: false });
    expect(options.maxAge).toBeGreaterThan(0);
    expect(options.maxAge).toBeLessThanOrEqual(300);
  });

  it("reads past the cache when asked (a password was refused: it may have been rotated)", async () => {
    getSecret.mockResolvedValue({ password: "p2" });
    await readJsonSecret(ARN, true);
    expect(getSecret).toHaveBeenLastCalledWith(ARN, expect.objectContaining({ forceFetch: true }));
  });
});

describe("readJsonSecretBounded", () => {
  it("passes `fresh` on to the read", async () => {
    getSecret.mockResolvedValue({ password: "p" });
    await readJsonSecretBounded(ARN, "database", true);
    expect(getSecret).toHaveBeenLastCalledWith(ARN, expect.objectContaining({ forceFetch: true }));
  });

  it("fails a read that never answers after its bound, naming the secret but not its content", async () => {
    vi.useFakeTimers();
    getSecret.mockReturnValue(new Promise(() => {}));
    const read = readJsonSecretBounded(ARN, "Redis");
    const failed = expect(read).rejects.toThrow(
      `the Redis secret was not read within ${SECRET_READ_TIMEOUT_MS} ms`,
    );
    await vi.advanceTimersByTimeAsync(SECRET_READ_TIMEOUT_MS);
    await failed;
  });
});
