import { describe, expect, it } from "vitest";
import { MAX_RETENTION_HOURS, parseConfig } from "../../layers/chat/config.ts";

describe("SESSION_RETENTION_DAYS", () => {
  it("keeps sessions by default and takes whole days up to a century, which Postgres's timestamps can hold", () => {
    expect(parseConfig({}).SESSION_RETENTION_DAYS).toBe(0);
    expect(parseConfig({ SESSION_RETENTION_DAYS: "30" }).SESSION_RETENTION_DAYS).toBe(30);
    expect(parseConfig({ SESSION_RETENTION_DAYS: "36500" }).SESSION_RETENTION_DAYS).toBe(36500);
    // now() - 99999999 days is out of Postgres's range: every hourly purge would fail
    expect(() => parseConfig({ SESSION_RETENTION_DAYS: "99999999" })).toThrow(/SESSION_RETENTION_DAYS/);
    expect(() => parseConfig({ SESSION_RETENTION_DAYS: "1.5" })).toThrow(/SESSION_RETENTION_DAYS/);
  });
});

describe("the other retentions and the Idempotency-Key TTL", () => {
  it("stop where Postgres's timestamps and integers do: past them every maintenance run or keyed write failed", () => {
    for (const key of ["OUTBOX_RETENTION_HOURS", "CONSUMED_EVENTS_RETENTION_HOURS"]) {
      // a "keep for good" value: now() - 99999999 hours is before 4713 BC
      expect(() => parseConfig({ [key]: "99999999" }), key).toThrow(key);
      expect(() => parseConfig({ [key]: String(MAX_RETENTION_HOURS + 1) }), key).toThrow(key);
      expect(
        (parseConfig({ [key]: String(MAX_RETENTION_HOURS) }) as unknown as Record<string, number>)[key],
      ).toBe(MAX_RETENTION_HOURS);
    }
    // the write statement casts it to a Postgres integer
    expect(() => parseConfig({ IDEMPOTENCY_TTL_SECONDS: "2147483648" })).toThrow(/IDEMPOTENCY_TTL_SECONDS/);
    expect(parseConfig({ IDEMPOTENCY_TTL_SECONDS: "2147483647" }).IDEMPOTENCY_TTL_SECONDS).toBe(2147483647);
  });
});
