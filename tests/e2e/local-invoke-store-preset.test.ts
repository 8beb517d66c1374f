import { Logger } from "@aws-lambda-powertools/logger";
import { afterAll, describe, expect, it } from "vitest";
import type { FunctionSpec } from "../../functions/manifest.ts";
import { type Runner, startRunner } from "../../local/server.ts";

// A process where AWS_LAMBDA_MAX_CONCURRENCY is set before the runner starts (a developer's shell, a container):
// Powertools then wants the InvokeStore from the first logger a handler module builds at its top level, which
// Lambda's runtime creates before the init phase. Its own file, so no earlier test has created the store.
const before = process.env.AWS_LAMBDA_MAX_CONCURRENCY;
process.env.AWS_LAMBDA_MAX_CONCURRENCY = "8";

let runner: Runner | undefined;
afterAll(async () => {
  await runner?.close();
  if (before === undefined) delete process.env.AWS_LAMBDA_MAX_CONCURRENCY;
  else process.env.AWS_LAMBDA_MAX_CONCURRENCY = before;
});

describe("local runner with AWS_LAMBDA_MAX_CONCURRENCY set beforehand", () => {
  it("loads a handler that builds a Powertools logger at init", async () => {
    expect((globalThis as { awslambda?: { InvokeStore?: unknown } }).awslambda?.InvokeStore).toBeUndefined();
    const spec: FunctionSpec = {
      name: "init-logger",
      handler: "init-logger",
      description: "builds a logger at init",
      route: { method: "GET", path: "/init-logger" },
      memoryMb: 128,
      timeoutSeconds: 3,
    };
    runner = await startRunner({
      functions: [spec],
      schedules: false,
      log: () => {},
      loadHandler: async () => {
        // what a handler module's top level does (functions/http/logger.ts)
        const logger = new Logger({ serviceName: "init", logLevel: "SILENT" });
        logger.appendKeys({ phase: "init" });
        return async () => ({ statusCode: 200, body: "ok" });
      },
    });
    const res = await fetch(`${runner.url}/init-logger`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("ok");
  });
});
