import { afterEach, describe, expect, it, vi } from "vitest";
import type { FunctionSpec } from "../../functions/manifest.ts";
import {
  createFunctionRuntime,
  type FunctionRuntime,
  type InvokeOptions,
  type InvokeOutcome,
} from "../../local/function-runtime.ts";
import { handleInvokeApi, type InvokeApiRequest, parseFunctionName } from "../../local/invoke-api.ts";

describe("parseFunctionName", () => {
  it.each([
    ["health", { name: "health" }],
    ["health:%24LATEST", { name: "health", qualifier: "$LATEST" }],
    ["arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Ahealth", { name: "health" }],
    ["arn:aws:lambda:eu-west-1:123456789012:function:health:live", { name: "health", qualifier: "live" }],
    ["123456789012:function:health", { name: "health" }],
  ])("%s", (raw, expected) => {
    expect(parseFunctionName(raw)).toEqual(expected);
  });
});

describe("handleInvokeApi", () => {
  const spec: FunctionSpec = {
    name: "fn",
    handler: "fn",
    description: "fn",
    memoryMb: 256,
    timeoutSeconds: 3,
  };

  /** A runtime that records each invocation and answers with `outcome` (a successful null by default). */
  function fakeRuntime(outcome: { durationMs?: number; log?: string } = {}) {
    const calls: { event: unknown; options: InvokeOptions }[] = [];
    const runtime: FunctionRuntime = {
      find: (name) => (name === spec.name ? spec : undefined),
      async invoke(_spec, event, options = {}): Promise<InvokeOutcome> {
        calls.push({ event, options });
        return {
          ok: true,
          result: null,
          json: undefined,
          awsRequestId: options.awsRequestId ?? "req",
          durationMs: outcome.durationMs ?? 1,
          ...(options.captureLog ? { log: outcome.log ?? "" } : {}),
        };
      },
      drain: async () => {},
    };
    return { runtime, calls };
  }

  const request = (over: Partial<InvokeApiRequest> = {}): InvokeApiRequest => ({
    method: "POST",
    path: "/2015-03-31/functions/fn/invocations",
    headers: {},
    body: Buffer.from("{}"),
    ...over,
  });
  const tailOf = (headers: Record<string, string>) =>
    Buffer.from(headers["x-amz-log-result"] ?? "", "base64").toString();

  it("sends no LogResult and captures no log unless LogType is Tail", async () => {
    for (const headers of [{}, { "x-amz-log-type": "None" }]) {
      const { runtime, calls } = fakeRuntime();
      const res = await handleInvokeApi(request({ headers }), runtime);
      expect(res.statusCode).toBe(200);
      expect(res.headers).not.toHaveProperty("x-amz-log-result");
      expect(calls[0]?.options.captureLog).toBe(false);
    }
    const { runtime } = fakeRuntime();
    const tail = await handleInvokeApi(request({ headers: { "x-amz-log-type": "Tail" } }), runtime);
    expect(tailOf(tail.headers)).toMatch(/^START RequestId: /);
  });

  it("bills the duration rounded up to the next millisecond in the REPORT line", async () => {
    const { runtime } = fakeRuntime({ durationMs: 12.3 });
    const res = await handleInvokeApi(request({ headers: { "x-amz-log-type": "Tail" } }), runtime);
    const id = res.headers["x-amzn-requestid"];
    expect(tailOf(res.headers).split("\n").at(-2)).toBe(
      `REPORT RequestId: ${id}\tDuration: 12.30 ms\tBilled Duration: 13 ms\tMemory Size: 256 MB\t`,
    );
  });

  it("ends what the function wrote with a newline before the END line, adding none when it has one", async () => {
    for (const log of ["last line", "last line\n"]) {
      const { runtime } = fakeRuntime({ log });
      const res = await handleInvokeApi(request({ headers: { "x-amz-log-type": "Tail" } }), runtime);
      const id = res.headers["x-amzn-requestid"];
      expect(tailOf(res.headers).split("\n").slice(0, 3)).toEqual([
        `START RequestId: ${id} Version: $LATEST`,
        "last line",
        `END RequestId: ${id}`,
      ]);
    }
  });

  it("refuses an unknown InvocationType with 400 InvalidParameterValueException, running nothing", async () => {
    const { runtime, calls } = fakeRuntime();
    const res = await handleInvokeApi(request({ headers: { "x-amz-invocation-type": "Later" } }), runtime);
    expect(res.statusCode).toBe(400);
    expect(res.headers["x-amzn-errortype"]).toBe("InvalidParameterValueException");
    expect(JSON.parse(res.body.toString())).toEqual({
      Type: "User",
      message: "Unsupported InvocationType: Later",
    });
    expect(calls).toEqual([]);
  });

  it("answers a GET on the invocations path 404 UnknownOperationException, running nothing", async () => {
    const { runtime, calls } = fakeRuntime();
    const res = await handleInvokeApi(request({ method: "GET" }), runtime);
    expect(res.statusCode).toBe(404);
    expect(res.headers["x-amzn-errortype"]).toBe("UnknownOperationException");
    expect(JSON.parse(res.body.toString()).message).toBe(
      "Unknown operation GET /2015-03-31/functions/fn/invocations",
    );
    expect(calls).toEqual([]);
  });

  it("accepts an Event payload of exactly 1 MB (1,048,576 bytes) and refuses one byte more with 413", async () => {
    // {"pad":""} is 10 bytes
    const payload = (bytes: number) => Buffer.from(JSON.stringify({ pad: "x".repeat(bytes - 10) }));
    const event = { "x-amz-invocation-type": "Event" };
    const { runtime, calls } = fakeRuntime();
    const limit = await handleInvokeApi(request({ headers: event, body: payload(1_048_576) }), runtime);
    expect(limit.statusCode).toBe(202);
    expect(calls).toHaveLength(1);
    const over = await handleInvokeApi(request({ headers: event, body: payload(1_048_577) }), runtime);
    expect(over.statusCode).toBe(413);
    expect(JSON.parse(over.body.toString()).message).toBe(
      "1048577 byte payload is too large for the Event invocation type (limit 1048576 bytes)",
    );
    expect(calls).toHaveLength(1);
  });

  it("hands the base64 JSON ClientContext header to the function as context.clientContext", async () => {
    // as the mobile SDKs send it (snake_case, unlike @types/aws-lambda): passed on as parsed
    const clientContext = {
      client: {
        installation_id: "i-1",
        app_title: "chat",
        app_version_name: "1.0",
        app_version_code: "1",
        app_package_name: "example.chat",
      },
      Custom: { tenant: "t1" },
      env: { platform_version: "1", platform: "web", make: "m", model: "x", locale: "en" },
    };
    // the real runtime, so the context the handler gets is the one Lambda's runtime would build
    const runtime = createFunctionRuntime({
      functions: [spec],
      loadHandler: async () => async (_event, context) => context.clientContext ?? null,
      log: () => {},
    });
    const header = Buffer.from(JSON.stringify(clientContext)).toString("base64");
    const res = await handleInvokeApi(request({ headers: { "x-amz-client-context": header } }), runtime);
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual(clientContext);
  });
});

describe("createFunctionRuntime, a handler's import (Lambda's init phase)", () => {
  const spec: FunctionSpec = {
    name: "fn",
    handler: "fn",
    description: "fn",
    memoryMb: 128,
    timeoutSeconds: 3,
  };
  afterEach(() => vi.useRealTimers());

  it("an import past Lambda's 10 s init limit finishes on the function's timeout, counted from that limit", async () => {
    vi.useFakeTimers();
    const runtime = createFunctionRuntime({
      functions: [spec],
      loadHandler: () =>
        new Promise((resolve) =>
          setTimeout(() => resolve(async (_event, context) => context.getRemainingTimeInMillis()), 12_000),
        ),
      log: () => {},
    });
    const outcome = runtime.invoke(spec, {});
    await vi.advanceTimersByTimeAsync(12_000);
    // 10 s of init, then 2 s of it inside the invocation: 1 s of its 3 left, not 3 from the import's end
    await expect(outcome).resolves.toMatchObject({ ok: true, result: 1000 });
  });

  it("an import that fails logs no Invoke Error line: no handler ran (Lambda reports an init error)", async () => {
    const runtime = createFunctionRuntime({
      functions: [spec],
      loadHandler: async () => {
        throw new Error("Cannot find module 'fn'");
      },
      log: () => {},
    });
    const outcome = await runtime.invoke(spec, {}, { captureLog: true });
    expect(outcome).toMatchObject({ ok: false, error: { errorType: "Runtime.ImportModuleError" } });
    expect(outcome.log ?? "").not.toContain("Invoke Error");
  });
});
