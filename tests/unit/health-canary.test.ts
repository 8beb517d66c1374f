import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { resetConfig } from "../../layers/chat/config.ts";
import { lambdaContext } from "../helpers/lambda-events.ts";

/** The scheduled canary: what it records for the alarm on an unhealthy API, and a missing HEALTH_URL. */
let server: Server;
let base: string;
let answer = { code: 200, status: "ok" };

beforeAll(async () => {
  server = createServer((_req, res) => {
    res.writeHead(answer.code, { "content-type": "application/json" });
    res.end(JSON.stringify({ status: answer.status }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "SILENT");
  vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "true");
});
afterEach(() => {
  vi.restoreAllMocks();
  resetConfig();
});
afterAll(async () => {
  vi.unstubAllEnvs();
  resetConfig();
  await new Promise((r) => server.close(r));
});

type Canary = (e: unknown, c: unknown) => Promise<{ ok: boolean; status: number; url: string }>;
const canary = async () =>
  ((await import("../../functions/health-canary.ts")) as { handler: Canary }).handler;

/** The values of one metric the handler recorded. */
const recorded = (spy: { mock: { calls: unknown[][] } }, name = "HealthCheckFailed") =>
  spy.mock.calls.filter((c) => c[0] === name).map((c) => c[2]);
const failedMetric = (spy: { mock: { calls: unknown[][] } }) => recorded(spy);

describe("health-canary", () => {
  it("records HealthCheckFailed 0 for a healthy API and 1 for one answering 503 down", async () => {
    vi.stubEnv("HEALTH_URL", `${base}/health`);
    const handler = await canary();
    const addMetric = vi.spyOn(Metrics.prototype, "addMetric");

    answer = { code: 200, status: "ok" };
    expect(await handler({}, lambdaContext("health-canary"))).toMatchObject({
      ok: true,
      url: `${base}/health`,
    });
    answer = { code: 503, status: "down" };
    expect(await handler({}, lambdaContext("health-canary"))).toMatchObject({ ok: false, status: 503 });
    // the alarm watches this metric: a down API must count as a failure, a healthy one must not
    expect(failedMetric(addMetric)).toEqual([0, 1]);
    expect(addMetric.mock.calls.filter((c) => c[0] === "HealthCheckLatency")).toHaveLength(2);
  });

  it("records HealthCheckDegraded 1 only for a 200 degraded (Redis or Kafka down), which is no failure", async () => {
    vi.stubEnv("HEALTH_URL", `${base}/health`);
    const handler = await canary();
    const addMetric = vi.spyOn(Metrics.prototype, "addMetric");
    const { logger } = await import("../../functions/http/logger.ts");
    const info = vi.spyOn(logger, "info");
    const warn = vi.spyOn(logger, "warn");
    for (const next of [
      { code: 200, status: "ok" },
      { code: 200, status: "degraded" },
      { code: 503, status: "down" },
    ]) {
      answer = next;
      await handler({}, lambdaContext("health-canary"));
    }
    expect(recorded(addMetric, "HealthCheckDegraded")).toEqual([0, 1, 0]);
    // what the alarms fire on is at WARN, for a filter on WARN and above
    const probes = (spy: { mock: { calls: unknown[][] } }) =>
      spy.mock.calls.filter((c) => c[0] === "health probe").map((c) => (c[1] as { health?: string }).health);
    expect(probes(info)).toEqual(["ok"]);
    expect(probes(warn)).toEqual(["degraded", "down"]);
    expect(failedMetric(addMetric)).toEqual([0, 0, 1]);
  });

  it("fails (so the invocation errors) without HEALTH_URL, rather than report a probe of nothing", async () => {
    vi.stubEnv("HEALTH_URL", undefined);
    const handler = await canary();
    const addMetric = vi.spyOn(Metrics.prototype, "addMetric");
    await expect(handler({}, lambdaContext("health-canary"))).rejects.toThrow(/HEALTH_URL is not set/);
    expect(failedMetric(addMetric)).toEqual([]);
  });
});
