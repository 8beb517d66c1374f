import { describe, expect, it } from "vitest";
import {
  ConfigError,
  configSchema,
  MAX_TIMEOUT_MS,
  parseConfig,
  requestBodyBytes,
} from "../../layers/chat/config.ts";

describe("parseConfig", () => {
  it("reads a flag as true from `true` or `1`, false from `false` or `0`, and refuses anything else", () => {
    expect(parseConfig({ DATABASE_SSL: "true" }).DATABASE_SSL).toBe(true);
    expect(parseConfig({ DATABASE_SSL: "1" }).DATABASE_SSL).toBe(true);
    expect(parseConfig({ DATABASE_SSL: "0" }).DATABASE_SSL).toBe(false);
    expect(parseConfig({ DATABASE_SSL: "false" }).DATABASE_SSL).toBe(false);
    expect(() => parseConfig({ DATABASE_SSL: "yes" })).toThrow(/DATABASE_SSL/);
  });

  it("reads a comma-separated list trimmed, without empty entries", () => {
    expect(parseConfig({ KAFKA_BROKERS: " a:9092, ,b:9092," }).KAFKA_BROKERS).toEqual(["a:9092", "b:9092"]);
    expect(parseConfig({ CORS_ORIGINS: "" }).CORS_ORIGINS).toEqual([]);
  });

  it("accepts MAX_BODY_BYTES exactly at what the longest message needs, and one byte less fails", () => {
    const needed = requestBodyBytes(8000);
    expect(parseConfig({ MAX_BODY_BYTES: String(needed) }).MAX_BODY_BYTES).toBe(needed);
    expect(() => parseConfig({ MAX_BODY_BYTES: String(needed - 1) })).toThrow(ConfigError);
  });

  it("refuses values outside each setting's range, naming the setting", () => {
    // 16,000 code points is the documented ceiling (the body and event bounds follow from it)
    expect(() => parseConfig({ MAX_CONTENT_CHARS: "16001", KAFKA_MAX_BATCH_BYTES: "200000" })).toThrow(
      /MAX_CONTENT_CHARS/,
    );
    // a pool of 0 connections could serve no request
    expect(() => parseConfig({ DB_POOL_MAX: "0" })).toThrow(/DB_POOL_MAX/);
    expect(() => parseConfig({ DB_POOL_MAX: "101" })).toThrow(/DB_POOL_MAX/);
    expect(() => parseConfig({ HEALTH_URL: "not a url" })).toThrow(/HEALTH_URL/);
    expect(parseConfig({ HEALTH_URL: "https://api.example/health" }).HEALTH_URL).toBe(
      "https://api.example/health",
    );
  });
});

describe("numeric settings", () => {
  const numeric = Object.keys(configSchema.shape).filter(
    (k) => typeof (parseConfig({}) as unknown as Record<string, unknown>)[k] === "number",
  );

  it("refuses an empty or blank value, which Number() reads as 0 (an empty RATE_LIMIT_PER_IP= was no limit)", () => {
    expect(numeric).toContain("RATE_LIMIT_PER_IP");
    for (const key of numeric)
      for (const value of ["", " "]) expect(() => parseConfig({ [key]: value }), key).toThrow(key);
  });

  it("takes digits only: no hex, exponent, fraction or unit", () => {
    for (const value of ["0x10", "1e3", "2.0", "10ms", "-1"])
      expect(() => parseConfig({ RATE_LIMIT_PER_TOKEN: value }), value).toThrow(/RATE_LIMIT_PER_TOKEN/);
    expect(parseConfig({ RATE_LIMIT_PER_TOKEN: " 30 " }).RATE_LIMIT_PER_TOKEN).toBe(30);
    expect(parseConfig({ RATE_LIMIT_PER_IP: "0" }).RATE_LIMIT_PER_IP).toBe(0);
  });

  it("bounds every timeout at Lambda's 15 minutes: past 2^31 - 1 ms Node's timers fire at once, and Postgres refuses it", () => {
    const timeouts = numeric.filter((k) => k.endsWith("_MS"));
    expect(timeouts).toEqual(expect.arrayContaining(["DB_CONNECT_TIMEOUT_MS", "REDIS_COMMAND_TIMEOUT_MS"]));
    for (const key of timeouts) {
      expect(() => parseConfig({ [key]: "2147483648" }), key).toThrow(key);
      expect((parseConfig({ [key]: String(MAX_TIMEOUT_MS) }) as unknown as Record<string, number>)[key]).toBe(
        MAX_TIMEOUT_MS,
      );
    }
  });
});
