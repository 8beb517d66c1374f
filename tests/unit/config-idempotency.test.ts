import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../layers/chat/config.ts";

describe("IDEMPOTENCY_LOCK_SECONDS", () => {
  it("must end before the record expires (a withdrawn replay is held until then)", () => {
    expect(() => parseConfig({ IDEMPOTENCY_TTL_SECONDS: "60", IDEMPOTENCY_LOCK_SECONDS: "60" })).toThrow(
      ConfigError,
    );
    expect(() => parseConfig({ IDEMPOTENCY_TTL_SECONDS: "60", IDEMPOTENCY_LOCK_SECONDS: "61" })).toThrow(
      /IDEMPOTENCY_LOCK_SECONDS: must be less than IDEMPOTENCY_TTL_SECONDS \(60\)/,
    );
    expect(
      parseConfig({ IDEMPOTENCY_TTL_SECONDS: "60", IDEMPOTENCY_LOCK_SECONDS: "59" }).IDEMPOTENCY_LOCK_SECONDS,
    ).toBe(59);
  });
});
