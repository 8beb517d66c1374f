import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { rateToMs, scheduledEvent } from "../../local/schedules.ts";

describe("rateToMs", () => {
  it.each([
    ["rate(1 minute)", 60_000],
    ["rate(5 minutes)", 300_000],
    ["rate(1 hour)", 3_600_000],
    ["rate(2 hours)", 7_200_000],
    ["rate(1 day)", 86_400_000],
  ])("%s → %d ms", (expr, ms) => {
    expect(rateToMs(expr)).toBe(ms);
  });

  it.each([
    "cron(0 * * * ? *)",
    "at(2026-01-01T00:00:00)",
    "rate(0 minutes)",
    "rate(5 seconds)",
    "rate(minutes)",
  ])("does not run %s", (expr) => {
    expect(rateToMs(expr)).toBeUndefined();
  });
});

describe("scheduledEvent", () => {
  beforeAll(() => vi.stubEnv("AWS_REGION", "us-east-1"));
  afterAll(() => vi.unstubAllEnvs());

  it("has the shape EventBridge Scheduler sends to a Lambda target", () => {
    const e = scheduledEvent("outbox-relay", new Date("2026-11-26T05:33:00.456Z"));
    expect(e).toEqual({
      version: "0",
      id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
      "detail-type": "Scheduled Event",
      source: "aws.scheduler",
      account: "000000000000",
      time: "2026-11-26T05:33:00Z",
      region: "us-east-1",
      resources: ["arn:aws:scheduler:us-east-1:000000000000:schedule/default/outbox-relay"],
      detail: "{}",
    });
  });
});
