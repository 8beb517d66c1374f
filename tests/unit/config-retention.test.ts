import { describe, expect, it } from "vitest";
import { parseConfig } from "../../layers/chat/config.ts";

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
