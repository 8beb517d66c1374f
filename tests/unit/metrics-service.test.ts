import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { afterEach, describe, expect, it, vi } from "vitest";

afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  vi.resetModules();
});

/** The EMF line a function's metrics print, parsed. */
async function emittedBy(env: Record<string, string | undefined>) {
  for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
  const { newMetrics } = await import("../../functions/http/metrics.ts");
  const lines: string[] = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    lines.push(String(chunk));
    return true;
  });
  const metrics = newMetrics();
  metrics.addMetric("Probe", MetricUnit.Count, 1);
  metrics.publishStoredMetrics();
  vi.mocked(process.stdout.write).mockRestore();
  const emf = lines.map((l) => JSON.parse(l)).find((o) => o._aws);
  expect(emf, lines.join("")).toBeDefined();
  return emf;
}

describe("a function's metrics", () => {
  it("carry the logs' service and the stack's namespace in a local run, where neither is set", async () => {
    const emf = await emittedBy({
      POWERTOOLS_SERVICE_NAME: undefined,
      POWERTOOLS_METRICS_NAMESPACE: undefined,
    });
    expect(emf.service).toBe("chat-backend");
    expect(emf._aws.CloudWatchMetrics[0].Namespace).toBe("ChatBackend");
    expect(emf.Probe).toBe(1);
  });

  it("take the stack's settings when it sets them", async () => {
    const emf = await emittedBy({ POWERTOOLS_SERVICE_NAME: "chat-x", POWERTOOLS_METRICS_NAMESPACE: "NsX" });
    expect(emf.service).toBe("chat-x");
    expect(emf._aws.CloudWatchMetrics[0].Namespace).toBe("NsX");
  });
});
