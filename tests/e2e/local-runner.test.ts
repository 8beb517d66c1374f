import { once } from "node:events";
import { connect } from "node:net";
import { fileURLToPath } from "node:url";
import { Logger } from "@aws-lambda-powertools/logger";
import {
  InvalidRequestContentException,
  InvokeCommand,
  type InvokeCommandInput,
  LambdaClient,
  ResourceNotFoundException,
} from "@aws-sdk/client-lambda";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { CORS_ALLOWED_HEADERS, CORS_ALLOWED_METHODS } from "../../functions/http/cors-headers.ts";
import type { FunctionSpec } from "../../functions/manifest.ts";
import { type LambdaHandler, moduleHandlerLoader } from "../../local/function-runtime.ts";
import type { LogLevel } from "../../local/log.ts";
import { LambdaInvokeError, type Runner, startRunner } from "../../local/server.ts";
import { fixtureFunctions } from "../fixtures/runner/manifest.ts";
import { SIGV4_AUTHORIZATION } from "../helpers/runner-process.ts";

// The ARNs asserted below name the runner's default region.
beforeAll(() => vi.stubEnv("AWS_REGION", "us-east-1"));
afterAll(() => vi.unstubAllEnvs());

const FIXTURES = fileURLToPath(new URL("../fixtures/runner", import.meta.url));
const silent = () => {};

interface Echo {
  event: APIGatewayProxyEventV2;
  context: Record<string, unknown>;
}

const SIGV4 = { authorization: SIGV4_AUTHORIZATION };

function lambdaClient(runner: Runner): LambdaClient {
  return new LambdaClient({
    endpoint: runner.url,
    region: "us-east-1",
    credentials: { accessKeyId: "x", secretAccessKey: "x" },
    maxAttempts: 1,
  });
}

async function waitFor(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("local runner over HTTP (API Gateway HTTP API, payload 2.0)", () => {
  let runner: Runner;
  beforeAll(async () => {
    runner = await startRunner({
      functions: fixtureFunctions,
      handlersDir: FIXTURES,
      schedules: false,
      log: silent,
    });
  });
  afterAll(() => runner.close());

  it("listens on a random port of 127.0.0.1", () => {
    expect(runner.port).toBeGreaterThan(0);
    expect(runner.url).toBe(`http://127.0.0.1:${runner.port}`);
  });

  it("passes a v2 event with path parameters, query and cookies to a middy handler", async () => {
    const res = await fetch(`${runner.url}/echo/a%20b?x=1&x=2&y=z`, {
      headers: { cookie: "a=1; b=2", "X-Custom": "Yes", "user-agent": "e2e-test" },
    });
    expect(res.status).toBe(200);
    const { event, context } = (await res.json()) as Echo;
    expect(event).toMatchObject({
      version: "2.0",
      routeKey: "GET /echo/{id}",
      rawPath: "/echo/a%20b",
      rawQueryString: "x=1&x=2&y=z",
      cookies: ["a=1", "b=2"],
      queryStringParameters: { x: "1,2", y: "z" },
      pathParameters: { id: "a b" },
      isBase64Encoded: false,
      requestContext: {
        accountId: "000000000000",
        apiId: "local",
        stage: "$default",
        routeKey: "GET /echo/{id}",
        http: {
          method: "GET",
          path: "/echo/a%20b",
          protocol: "HTTP/1.1",
          sourceIp: "127.0.0.1",
          userAgent: "e2e-test",
        },
      },
    });
    expect(event.headers["x-custom"]).toBe("Yes");
    // API Gateway's own, here for plain HTTP on the runner's port
    expect(event.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(event.headers["x-forwarded-proto"]).toBe("http");
    expect(event.headers["x-forwarded-port"]).toBe(String(runner.port));
    expect(event.headers.cookie).toBeUndefined();
    expect(event.body).toBeUndefined();
    expect(event.stageVariables).toBeUndefined();
    expect(event.requestContext.time).toMatch(/^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/);
    expect(res.headers.get("x-request-id")).toBe(event.requestContext.requestId);
    expect(res.headers.get("apigw-requestid")).toBe(event.requestContext.requestId);
    expect(context).toMatchObject({
      functionName: "echo",
      functionVersion: "$LATEST",
      invokedFunctionArn: "arn:aws:lambda:us-east-1:000000000000:function:echo",
      memoryLimitInMB: "256",
      logGroupName: "/aws/lambda/echo",
      callbackWaitsForEmptyEventLoop: true,
    });
    expect(context.awsRequestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(context.remainingMs).toBeGreaterThan(4000);
    expect(context.remainingMs).toBeLessThanOrEqual(5000);
  });

  it("appends the client's address to the x-forwarded-for it sent, as API Gateway does", async () => {
    const res = await fetch(`${runner.url}/echo/1`, { headers: { "X-Forwarded-For": "203.0.113.9" } });
    const { event } = (await res.json()) as Echo;
    expect(event.headers["x-forwarded-for"]).toBe("203.0.113.9, 127.0.0.1");
    expect(event.requestContext.http.sourceIp).toBe("127.0.0.1");
  });

  it("passes a JSON body as a utf8 string and a binary body as base64", async () => {
    const json = await fetch(`${runner.url}/echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: "héllo" }),
    });
    const { event } = (await json.json()) as Echo;
    expect(event.routeKey).toBe("POST /echo");
    expect(event.isBase64Encoded).toBe(false);
    expect(JSON.parse(event.body ?? "")).toEqual({ text: "héllo" });

    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    const binary = await fetch(`${runner.url}/echo`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: bytes,
    });
    const echoed = ((await binary.json()) as Echo).event;
    expect(echoed.isBase64Encoded).toBe(true);
    expect(Buffer.from(echoed.body ?? "", "base64")).toEqual(bytes);
  });

  it("maps a structured result: status, cookies as set-cookie, base64 body, the handler's x-request-id", async () => {
    const res = await fetch(`${runner.url}/cookies`);
    expect(res.status).toBe(201);
    expect(res.headers.getSetCookie()).toEqual(["session=abc; Path=/; HttpOnly", "theme=dark"]);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    expect(res.headers.get("x-request-id")).toBe("from-handler");
    expect(res.headers.get("apigw-requestid")).toBeTruthy();
    expect(Buffer.from(await res.arrayBuffer())).toEqual(Buffer.from([0, 1, 2, 254, 255]));
  });

  it("answers a plain string or an object without statusCode as 200 application/json", async () => {
    const text = await fetch(`${runner.url}/plain-string`);
    expect(text.status).toBe(200);
    expect(text.headers.get("content-type")).toBe("application/json");
    expect(await text.text()).toBe("just a string");

    const obj = await fetch(`${runner.url}/plain-object`);
    expect(obj.status).toBe(200);
    expect(obj.headers.get("content-type")).toBe("application/json");
    expect(await obj.json()).toMatchObject({ hello: "world", received: { routeKey: "GET /plain-object" } });
  });

  it("answers 500 Internal Server Error when the handler throws", async () => {
    const res = await fetch(`${runner.url}/boom`);
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ message: "Internal Server Error" });
    expect(res.headers.get("x-request-id")).toBe(res.headers.get("apigw-requestid"));
  });

  it("answers 500 when the handler's response cannot be sent as it is", async () => {
    const res = await fetch(`${runner.url}/bad-header`);
    expect(res.status).toBe(500);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("x-bad")).toBeNull();
    expect(res.headers.get("x-request-id")).toBeTruthy();
    expect(await res.json()).toEqual({ message: "Internal Server Error" });
  });

  it("answers 500 when a response exceeds Lambda's 6 MB, as API Gateway does, and serves one just under it", async () => {
    // each '"' of the body is 4 bytes in Lambda's response JSON: 1,500,000 → ≈ 6.0 MB, 1,600,000 → ≈ 6.4 MB
    const under = await fetch(`${runner.url}/large?chars=1500000`);
    expect(under.status).toBe(200);
    expect((await under.text()).length).toBe(3_000_002);
    const over = await fetch(`${runner.url}/large?chars=1600000`);
    expect(over.status).toBe(500);
    expect(await over.json()).toEqual({ message: "Internal Server Error" });
  });

  it("enforces the function timeout with a 504", async () => {
    const started = Date.now();
    const res = await fetch(`${runner.url}/slow`);
    expect(res.status).toBe(504);
    expect(await res.json()).toEqual({ message: "Task timed out after 1.00 seconds" });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("without a $default function, answers a request no route takes as API Gateway does: 404 {message}", async () => {
    for (const [method, path] of [
      ["GET", "/nowhere?x=1"],
      ["DELETE", "/echo/123"], // a known path, another method: API Gateway does not say 405 either
    ] as const) {
      const res = await fetch(`${runner.url}${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(await res.json()).toEqual({ message: "Not Found" });
    }
  });

  it("sends a request no route takes to the $default function, with routeKey $default", async () => {
    const withDefault = await startRunner({
      functions: [
        ...fixtureFunctions,
        { ...fixtureFunctions[0], name: "fallback", route: undefined, defaultRoute: true } as FunctionSpec,
      ],
      handlersDir: FIXTURES,
      schedules: false,
      log: silent,
    });
    try {
      for (const [method, path] of [
        ["GET", "/nowhere"],
        ["DELETE", "/echo/123"],
      ] as const) {
        const res = await fetch(`${withDefault.url}${path}?q=1`, { method });
        expect(res.status).toBe(200);
        const { event } = (await res.json()) as Echo;
        expect(event).toMatchObject({
          routeKey: "$default",
          rawPath: path,
          rawQueryString: "q=1",
          requestContext: { routeKey: "$default", http: { method, path } },
        });
        expect(event.pathParameters).toBeUndefined();
      }
      // a route still wins over it
      const routed = (await (await fetch(`${withDefault.url}/echo/7`)).json()) as Echo;
      expect(routed.event.routeKey).toBe("GET /echo/{id}");
    } finally {
      await withDefault.close();
    }
  });

  it("routes OPTIONS like any method when no CORS origin is configured (API Gateway then has no preflight)", async () => {
    const res = await fetch(`${runner.url}/echo/1`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "GET" },
    });
    expect(res.status).toBe(404); // no OPTIONS route and no `$default` function in these fixtures
    expect(await res.json()).toEqual({ message: "Not Found" });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("keeps a handler warm between invocations", async () => {
    const first = (await runner.invoke("counter")) as { count: number };
    const second = (await runner.invoke("counter")) as { count: number };
    expect(second.count).toBe(first.count + 1);
  });
});

describe("local runner CORS preflight", () => {
  it("answers the preflight of a listed origin with the methods infra configures", async () => {
    const runner = await startRunner({
      functions: fixtureFunctions,
      handlersDir: FIXTURES,
      schedules: false,
      corsOrigins: ["https://app.example"],
      log: silent,
    });
    try {
      const res = await fetch(`${runner.url}/echo/1`, {
        method: "OPTIONS",
        headers: {
          origin: "https://app.example",
          "access-control-request-method": "GET",
          "access-control-request-headers": "content-type,idempotency-key",
        },
      });
      expect(res.status).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example");
      // API Gateway's CORS configuration is the API's, not the route's
      expect(res.headers.get("access-control-allow-methods")).toBe(CORS_ALLOWED_METHODS.join(","));
      // API Gateway answers with its configured list, not an echo of the request's
      expect(res.headers.get("access-control-allow-headers")).toBe(CORS_ALLOWED_HEADERS.join(","));
      // an origin that is not listed: 204, no CORS headers
      const foreign = await fetch(`${runner.url}/echo/1`, {
        method: "OPTIONS",
        headers: { origin: "https://evil.example", "access-control-request-method": "GET" },
      });
      expect(foreign.status).toBe(204);
      expect(foreign.headers.get("access-control-allow-origin")).toBeNull();
    } finally {
      await runner.close();
    }
  });
});

describe("local runner as the Lambda Invoke API (@aws-sdk/client-lambda)", () => {
  let runner: Runner;
  let lambda: LambdaClient;
  const asyncCalls: unknown[] = [];
  const inlineSpec = (name: string, path?: string): FunctionSpec => ({
    name,
    handler: name,
    description: name,
    ...(path ? { route: { method: "GET", path } } : {}),
    memoryMb: 128,
    timeoutSeconds: 3,
  });
  const functions: FunctionSpec[] = [
    ...fixtureFunctions,
    inlineSpec("recorder"),
    inlineSpec("unserializable", "/unserializable"),
    inlineSpec("oversized", "/oversized"),
    inlineSpec("chatty"),
    inlineSpec("context-one"),
    inlineSpec("context-two"),
    inlineSpec("who-called"),
  ];
  const chattyLogger = new Logger({ serviceName: "chatty", logLevel: "INFO" });
  // One logger for two functions, as functions/http/logger.ts is one per process for every function served.
  const sharedLogger = new Logger({ serviceName: "shared", logLevel: "INFO" });
  const contextLogging: LambdaHandler = async (event, context) => {
    sharedLogger.addContext(context);
    await new Promise((r) => setTimeout(r, (event as { waitMs: number }).waitMs));
    sharedLogger.info("done");
    return null;
  };
  /** What each invocation of who-called was told about its caller. */
  const callers: { invokedFunctionArn: string; clientContext: unknown }[] = [];
  const inline: Record<string, LambdaHandler> = {
    "who-called": async (_event, context) => {
      const seen = {
        invokedFunctionArn: context.invokedFunctionArn,
        clientContext: context.clientContext ?? null,
      };
      callers.push(seen);
      return seen;
    },
    recorder: async (event) => {
      await new Promise((r) => setTimeout(r, 50));
      asyncCalls.push(event);
      return null;
    },
    // small bodies: only serializing the whole result finds what is wrong
    unserializable: async () => ({ statusCode: 200, body: "ok", headers: { "x-count": 1n } }),
    oversized: async () => ({ statusCode: 200, body: "ok", debug: "x".repeat(6_300_000) }),
    "context-one": contextLogging,
    "context-two": contextLogging,
    // writes through every channel a handler uses, with turns for another invocation in between
    chatty: async (event) => {
      const { name, padding = 0 } = event as { name: string; padding?: number };
      console.log(`${name}: console.log`);
      await new Promise((r) => setTimeout(r, 20));
      chattyLogger.info(`${name}: powertools`);
      await new Promise((r) => setTimeout(r, 20));
      process.stderr.write(`${name}: stderr${"x".repeat(padding)}\n`);
      return name;
    },
  };

  beforeAll(async () => {
    const fromFiles = moduleHandlerLoader(FIXTURES);
    runner = await startRunner({
      functions,
      schedules: false,
      log: silent,
      loadHandler: async (spec) => inline[spec.name] ?? fromFiles(spec),
    });
    lambda = lambdaClient(runner);
  });
  afterAll(async () => {
    lambda.destroy();
    await runner.close();
  });

  const invoke = (input: Omit<InvokeCommandInput, "Payload"> & { payload?: unknown }) => {
    const { payload, ...rest } = input;
    const Payload = payload === undefined ? undefined : new TextEncoder().encode(JSON.stringify(payload));
    return lambda.send(new InvokeCommand({ ...rest, Payload }));
  };
  const decode = (bytes: Uint8Array | undefined) => JSON.parse(new TextDecoder().decode(bytes));

  it("RequestResponse returns 200 with the JSON result and the executed version", async () => {
    const out = await invoke({ FunctionName: "plain-object", payload: { a: 1 } });
    expect(out.StatusCode).toBe(200);
    expect(out.FunctionError).toBeUndefined();
    expect(out.ExecutedVersion).toBe("$LATEST");
    expect(decode(out.Payload)).toEqual({ hello: "world", received: { a: 1 } });
  });

  it("finds a function by full ARN and by name:qualifier", async () => {
    const byArn = await invoke({
      FunctionName: "arn:aws:lambda:us-east-1:000000000000:function:plain-string",
      payload: {},
    });
    expect(decode(byArn.Payload)).toBe("just a string");
    const byQualifier = await invoke({ FunctionName: "plain-string:$LATEST", payload: {} });
    expect(decode(byQualifier.Payload)).toBe("just a string");
  });

  it("Event returns 202 at once and runs the function in the background", async () => {
    const before = asyncCalls.length;
    const out = await invoke({ FunctionName: "recorder", InvocationType: "Event", payload: { job: 7 } });
    expect(out.StatusCode).toBe(202);
    expect(asyncCalls.length).toBe(before); // not run yet: the handler takes 50 ms
    await waitFor(() => asyncCalls.length > before);
    expect(asyncCalls.at(-1)).toEqual({ job: 7 });
  });

  it("DryRun returns 204 without running the function", async () => {
    const before = asyncCalls.length;
    const out = await invoke({ FunctionName: "recorder", InvocationType: "DryRun", payload: {} });
    expect(out.StatusCode).toBe(204);
    await new Promise((r) => setTimeout(r, 100));
    expect(asyncCalls.length).toBe(before);
  });

  it("reports a thrown error as FunctionError Unhandled with errorType, errorMessage and trace", async () => {
    const out = await invoke({ FunctionName: "boom", payload: {} });
    expect(out.StatusCode).toBe(200);
    expect(out.FunctionError).toBe("Unhandled");
    const error = decode(out.Payload);
    expect(error).toMatchObject({ errorType: "TypeError", errorMessage: "boom: something broke" });
    expect(error.trace[0]).toBe("TypeError: boom: something broke");
    expect(error.trace.length).toBeGreaterThan(1);
  });

  it("reports a result over 6 MB as Unhandled Function.ResponseSizeTooLarge, as Lambda does", async () => {
    const out = await invoke({ FunctionName: "large", payload: { chars: 1_600_000 } });
    expect(out.FunctionError).toBe("Unhandled");
    expect(decode(out.Payload)).toMatchObject({
      errorType: "Function.ResponseSizeTooLarge",
      errorMessage: "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
    });
    const ok = await invoke({ FunctionName: "large", payload: { chars: 10 } });
    expect(ok.FunctionError).toBeUndefined();
    expect(JSON.parse(decode(ok.Payload).body)).toBe('"'.repeat(10));
  });

  it("reports a result JSON cannot serialize as Unhandled Runtime.JSONStringifyError (500 over HTTP)", async () => {
    const out = await invoke({ FunctionName: "unserializable", payload: {} });
    expect(out.StatusCode).toBe(200);
    expect(out.FunctionError).toBe("Unhandled");
    expect(decode(out.Payload)).toEqual({
      errorType: "Runtime.JSONStringifyError",
      errorMessage: "Unable to stringify response body",
      trace: [],
    });
    const http = await fetch(`${runner.url}/unserializable`);
    expect(http.status).toBe(500);
    expect(await http.json()).toEqual({ message: "Internal Server Error" });
  });

  it("reports a result over 6 MB outside its body as Function.ResponseSizeTooLarge (500 over HTTP)", async () => {
    const out = await invoke({ FunctionName: "oversized", payload: {} });
    expect(out.FunctionError).toBe("Unhandled");
    expect(decode(out.Payload)).toMatchObject({ errorType: "Function.ResponseSizeTooLarge" });
    const http = await fetch(`${runner.url}/oversized`);
    expect(http.status).toBe(500);
    expect(await http.json()).toEqual({ message: "Internal Server Error" });
  });

  it("keeps each concurrent invocation's Powertools context its own, as Lambda's InvokeStore does", async () => {
    const loggedBy = async (name: string, waitMs: number) => {
      const out = await invoke({ FunctionName: name, LogType: "Tail", payload: { waitMs } });
      const line = Buffer.from(out.LogResult ?? "", "base64")
        .toString()
        .split("\n")
        .find((l) => l.includes('"done"'));
      return {
        requestId: out.$metadata.requestId,
        line: JSON.parse(line ?? "{}") as Record<string, unknown>,
      };
    };
    // one logs after the other has added its own context to the shared logger
    const [one, two] = await Promise.all([loggedBy("context-one", 150), loggedBy("context-two", 10)]);
    expect(one.line).toMatchObject({ function_name: "context-one", function_request_id: one.requestId });
    expect(two.line).toMatchObject({ function_name: "context-two", function_request_id: two.requestId });
  });

  it("LogType Tail returns the end of what that invocation wrote, framed by START/END/REPORT", async () => {
    const tailOf = async (name: string, padding = 0) => {
      const out = await invoke({ FunctionName: "chatty", LogType: "Tail", payload: { name, padding } });
      expect(decode(out.Payload)).toBe(name);
      return {
        requestId: out.$metadata.requestId,
        log: Buffer.from(out.LogResult ?? "", "base64").toString(),
      };
    };
    // at once: neither may see the other's lines
    const [a, b] = await Promise.all([tailOf("a"), tailOf("b")]);
    for (const [name, other, { requestId, log }] of [
      ["a", "b", a],
      ["b", "a", b],
    ] as const) {
      const lines = log.split("\n");
      expect(lines[0]).toBe(`START RequestId: ${requestId} Version: $LATEST`);
      expect(lines[1]).toBe(`${name}: console.log`);
      expect(JSON.parse(lines[2] ?? "")).toMatchObject({ level: "INFO", message: `${name}: powertools` });
      expect(lines[3]).toBe(`${name}: stderr`);
      expect(lines[4]).toBe(`END RequestId: ${requestId}`);
      expect(lines[5]).toMatch(new RegExp(`^REPORT RequestId: ${requestId}\tDuration: [\\d.]+ ms\t`));
      expect(log).not.toContain(`${other}:`);
    }
    // only the last 4 KB
    const long = await tailOf("long", 5000);
    expect(Buffer.byteLength(long.log)).toBe(4096);
    expect(long.log).toMatch(/^x+\nEND RequestId: /);
  });

  it("reports a timeout as Unhandled 'Task timed out after 1.00 seconds'", async () => {
    const out = await invoke({ FunctionName: "slow", payload: {} });
    expect(out.FunctionError).toBe("Unhandled");
    const error = decode(out.Payload);
    expect(error.errorType).toBe("Sandbox.Timedout");
    expect(error.errorMessage).toContain("Task timed out after 1.00 seconds");
  });

  it("throws ResourceNotFoundException for an unknown function", async () => {
    const err = await invoke({ FunctionName: "no-such-function", payload: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResourceNotFoundException);
    expect((err as Error).message).toBe(
      "Function not found: arn:aws:lambda:us-east-1:000000000000:function:no-such-function",
    );
    expect((err as ResourceNotFoundException).$metadata.httpStatusCode).toBe(404);
  });

  it("LogType Tail of a failed invocation ends with what Lambda logs for it: the Invoke Error, the timeout", async () => {
    const tail = async (name: string) => {
      const out = await invoke({ FunctionName: name, LogType: "Tail", payload: {} });
      expect(out.FunctionError).toBe("Unhandled");
      const lines = Buffer.from(out.LogResult ?? "", "base64")
        .toString()
        .split("\n");
      const id = out.$metadata.requestId ?? "";
      // the line just before END
      return { id, line: lines[lines.indexOf(`END RequestId: ${id}`) - 1] ?? "" };
    };
    // the Node.js runtime logs a thrown error (with its stack) before it reports it
    const thrown = await tail("boom");
    const prefix = new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\t${thrown.id}\tERROR\tInvoke Error \t`);
    expect(thrown.line).toMatch(prefix);
    const logged = JSON.parse(thrown.line.replace(prefix, ""));
    expect(logged).toMatchObject({ errorType: "TypeError", errorMessage: "boom: something broke" });
    expect(logged.stack[0]).toBe("TypeError: boom: something broke");
    // Lambda itself logs the timeout
    const timedOut = await tail("slow");
    expect(timedOut.line).toMatch(
      new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z ${timedOut.id} Task timed out after 1\\.00 seconds$`),
    );
  });

  it("passes ClientContext to synchronous invocations only, as Lambda does", async () => {
    const ClientContext = Buffer.from(JSON.stringify({ custom: { tenant: "t1" } })).toString("base64");
    const sync = await invoke({ FunctionName: "who-called", ClientContext, payload: {} });
    expect(decode(sync.Payload).clientContext).toEqual({ custom: { tenant: "t1" } });
    const before = callers.length;
    const queued = await invoke({
      FunctionName: "who-called",
      InvocationType: "Event",
      ClientContext,
      payload: {},
    });
    expect(queued.StatusCode).toBe(202);
    await waitFor(() => callers.length > before);
    expect(callers.at(-1)?.clientContext).toBeNull();
  });

  it("tells the function the ARN it was invoked by: qualified when the caller named $LATEST", async () => {
    const arn = "arn:aws:lambda:us-east-1:000000000000:function:who-called";
    const seen = async (input: Omit<InvokeCommandInput, "Payload">) =>
      decode((await invoke({ ...input, payload: {} })).Payload).invokedFunctionArn;
    expect(await seen({ FunctionName: "who-called" })).toBe(arn);
    expect(await seen({ FunctionName: arn })).toBe(arn);
    expect(await seen({ FunctionName: "who-called", Qualifier: "$LATEST" })).toBe(`${arn}:$LATEST`);
    expect(await seen({ FunctionName: "who-called:$LATEST" })).toBe(`${arn}:$LATEST`);
    expect(await seen({ FunctionName: `${arn}:$LATEST` })).toBe(`${arn}:$LATEST`);
  });

  it("throws InvalidRequestContentException for a payload that is not JSON", async () => {
    const err = await lambda
      .send(
        new InvokeCommand({ FunctionName: "plain-object", Payload: new TextEncoder().encode("{not json") }),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidRequestContentException);
    expect((err as InvalidRequestContentException).$metadata.httpStatusCode).toBe(400);
  });

  it("refuses a payload over Lambda's limits with 413 RequestEntityTooLargeException, before running anything", async () => {
    const before = asyncCalls.length;
    const tooLarge = async (input: InvokeCommandInput) => {
      const err = (await lambda.send(new InvokeCommand(input)).catch((e: unknown) => e)) as Error & {
        $metadata: { httpStatusCode?: number };
      };
      return { name: err.name, message: err.message, status: err.$metadata?.httpStatusCode };
    };
    const json = (bytes: number) => new TextEncoder().encode(JSON.stringify({ pad: "x".repeat(bytes - 10) }));
    // synchronous: 6 MB, whether the body is read whole or cut off past it
    for (const bytes of [6_300_000, 11_000_000])
      expect(await tooLarge({ FunctionName: "recorder", Payload: json(bytes) })).toEqual({
        name: "RequestEntityTooLargeException",
        message: "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
        status: 413,
      });
    // asynchronous: 1 MB
    expect(
      await tooLarge({ FunctionName: "recorder", InvocationType: "Event", Payload: json(1_100_000) }),
    ).toEqual({
      name: "RequestEntityTooLargeException",
      message: "1100000 byte payload is too large for the Event invocation type (limit 1048576 bytes)",
      status: 413,
    });
    const justUnder = await lambda.send(
      new InvokeCommand({ FunctionName: "recorder", InvocationType: "Event", Payload: json(1_000_000) }),
    );
    expect(justUnder.StatusCode).toBe(202);
    await waitFor(() => asyncCalls.length === before + 1);
  });

  it("over HTTP, refuses a request whose event would pass Lambda's 6 MB limit, without running the function", async () => {
    const post = (body: Buffer, type: string) =>
      fetch(`${runner.url}/echo`, { method: "POST", headers: { "content-type": type }, body });
    // base64 makes 4.5 MB of binary into 6 MB; JSON escapes a control character into 6 bytes
    const binaryOver = await post(Buffer.alloc(4_800_000, 0xff), "application/octet-stream");
    expect(binaryOver.status).toBe(413);
    expect(await binaryOver.json()).toEqual({ message: "Request Entity Too Large" });
    const escapedOver = await post(Buffer.alloc(1_100_000, 1), "text/plain");
    expect(escapedOver.status).toBe(413);
    const under = await post(Buffer.alloc(4_000_000, 0xff), "application/octet-stream");
    expect(under.status).toBe(200);
    const { event } = (await under.json()) as { event: { body: string; isBase64Encoded: boolean } };
    expect(event.isBase64Encoded).toBe(true);
    expect(Buffer.from(event.body, "base64").length).toBe(4_000_000);
  });

  it("a connection whose body was refused unread is closed, not offered for the next request", async () => {
    const { request } = await import("node:http");
    const agent = new (await import("node:http")).Agent({ keepAlive: true, maxSockets: 1 });
    const send = (method: string, path: string, body?: Buffer) =>
      new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
        const req = request(`${runner.url}${path}`, { method, agent, headers: SIGV4 }, (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
        });
        req.on("error", reject);
        req.end(body);
      });
    try {
      const refused = await send(
        "POST",
        "/2015-03-31/functions/recorder/invocations",
        Buffer.alloc(11_000_000, 32),
      );
      expect(refused).toEqual({ status: 413, connection: "close" });
      expect(
        (await send("POST", "/2015-03-31/functions/plain-object/invocations", Buffer.from("{}"))).status,
      ).toBe(200);
    } finally {
      agent.destroy();
    }
  });

  it("finds no version or alias but $LATEST (the stack publishes none), in the name or as Qualifier", async () => {
    for (const input of [
      { FunctionName: "plain-object:live" },
      { FunctionName: "arn:aws:lambda:us-east-1:000000000000:function:plain-object:7" },
      { FunctionName: "plain-object", Qualifier: "live" },
    ]) {
      const err = await invoke({ ...input, payload: {} }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ResourceNotFoundException);
      expect((err as Error).message).toMatch(
        /^Function not found: arn:aws:lambda:us-east-1:000000000000:function:plain-object:(live|7)$/,
      );
    }
    const latest = await invoke({ FunctionName: "plain-object", Qualifier: "$LATEST", payload: {} });
    expect(latest.StatusCode).toBe(200);
  });

  it("answers the raw 404 with the x-amzn-errortype header and the Lambda body", async () => {
    const res = await fetch(`${runner.url}/2015-03-31/functions/ghost/invocations`, {
      method: "POST",
      headers: SIGV4,
      body: "{}",
    });
    expect(res.status).toBe(404);
    expect(res.headers.get("x-amzn-errortype")).toBe("ResourceNotFoundException");
    expect(await res.json()).toEqual({
      Type: "User",
      message: "Function not found: arn:aws:lambda:us-east-1:000000000000:function:ghost",
    });
  });
});

describe("local runner schedules", () => {
  const spec = (name: string, schedule: string, timeoutSeconds = 3): FunctionSpec => ({
    name,
    handler: name,
    description: name,
    schedule,
    memoryMb: 128,
    timeoutSeconds,
  });

  it("points the health canary at its own /health when HEALTH_URL is not set, as the stack points it at the API's", async () => {
    const before = process.env.HEALTH_URL;
    delete process.env.HEALTH_URL;
    const seen: (string | undefined)[] = [];
    const runner = await startRunner({
      functions: [spec("canary", "rate(5 minutes)")],
      loadHandler: async () => async () => {
        seen.push(process.env.HEALTH_URL);
      },
      schedules: { intervalMs: () => 30 },
      log: silent,
    });
    try {
      await waitFor(() => seen.length >= 1);
      expect(seen[0]).toBe(`${runner.url}/health`);
    } finally {
      await runner.close();
      expect(process.env.HEALTH_URL).toBeUndefined(); // a later runner in this process gets its own
      if (before === undefined) delete process.env.HEALTH_URL;
      else process.env.HEALTH_URL = before;
    }
  });

  it("runs a rate() schedule with EventBridge Scheduler's payload on every tick, beside a run still going", async () => {
    const events: Array<Record<string, unknown>> = [];
    const logs: Array<[LogLevel, string]> = [];
    let running = 0;
    let maxRunning = 0;
    const slowTick: LambdaHandler = async (event) => {
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      events.push(event as Record<string, unknown>);
      await new Promise((r) => setTimeout(r, 250)); // longer than the 60 ms interval
      running -= 1;
    };
    const runner = await startRunner({
      functions: [spec("tick", "rate(1 minute)"), spec("nightly", "cron(0 3 * * ? *)")],
      loadHandler: async () => slowTick,
      schedules: { intervalMs: (s) => (s.name === "tick" ? 60 : undefined) },
      log: (level, message) => logs.push([level, message]),
    });
    try {
      await waitFor(() => events.length >= 2);
    } finally {
      await runner.close();
    }
    // as Scheduler invokes asynchronously on every tick: Lambda runs them side by side
    expect(maxRunning).toBeGreaterThan(1);
    expect(
      logs.some(([level, m]) => level === "info" && m.includes("tick: previous scheduled run still going")),
    ).toBe(true);
    expect(
      logs.some(([level, m]) => level === "warn" && m.includes("nightly: schedule cron(0 3 * * ? *)")),
    ).toBe(true);
    const [first] = events;
    expect(first).toMatchObject({
      version: "0",
      "detail-type": "Scheduled Event",
      source: "aws.scheduler",
      account: "000000000000",
      region: "us-east-1",
      resources: ["arn:aws:scheduler:us-east-1:000000000000:schedule/default/tick"],
      detail: "{}",
    });
    expect(first?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(first?.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(events[1]?.id).not.toBe(first?.id);
  });

  it("runs no schedule when LOCAL_SCHEDULES=off, yet the function can still be invoked by name", async () => {
    const calls: unknown[] = [];
    const previous = process.env.LOCAL_SCHEDULES;
    process.env.LOCAL_SCHEDULES = "off";
    try {
      const runner = await startRunner({
        functions: [spec("tick", "rate(1 minute)")],
        loadHandler: async () => async (event) => {
          calls.push(event);
          return "ran";
        },
        schedules: { intervalMs: () => 30 },
        log: silent,
      });
      await new Promise((r) => setTimeout(r, 200));
      expect(calls).toHaveLength(0);
      expect(await runner.invoke("tick", { manual: true })).toBe("ran");
      expect(calls).toEqual([{ manual: true }]);
      await runner.close();
    } finally {
      if (previous === undefined) delete process.env.LOCAL_SCHEDULES;
      else process.env.LOCAL_SCHEDULES = previous;
    }
  });
});

describe("local runner handler loading", () => {
  it("loads a handler once and keeps it warm; a failed load is retried on the next invocation", async () => {
    let loads = 0;
    const runner = await startRunner({
      functions: [{ name: "warm", handler: "warm", description: "", memoryMb: 128, timeoutSeconds: 3 }],
      schedules: false,
      log: silent,
      loadHandler: async () => {
        loads += 1;
        if (loads === 1) throw new Error("Cannot find module 'warm.ts'");
        return async () => "ok";
      },
    });
    try {
      const failed = await runner.invoke("warm").catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(LambdaInvokeError);
      expect((failed as LambdaInvokeError).payload.errorType).toBe("Runtime.ImportModuleError");
      expect(await runner.invoke("warm")).toBe("ok");
      expect(await runner.invoke("warm")).toBe("ok");
      expect(await runner.invoke("warm")).toBe("ok");
      expect(loads).toBe(2);
    } finally {
      await runner.close();
    }
  });
});

describe("local runner init phase", () => {
  it("starts a function's timeout when its handler has loaded: a cold import does not eat it, as Lambda's init does not", async () => {
    const runner = await startRunner({
      functions: [{ name: "cold", handler: "cold", description: "", memoryMb: 128, timeoutSeconds: 1 }],
      schedules: false,
      log: silent,
      // an import slower than the timeout (well inside Lambda's 10 s init limit)
      loadHandler: async () => {
        await new Promise((r) => setTimeout(r, 1500));
        return async (_event, context) => context.getRemainingTimeInMillis();
      },
    });
    try {
      const remaining = await runner.invoke("cold");
      expect(remaining).toBeGreaterThan(0);
      expect(remaining).toBeLessThanOrEqual(1000);
    } finally {
      await runner.close();
    }
  });
});

describe("local runner close()", () => {
  it("stops listening", async () => {
    const runner = await startRunner({
      functions: fixtureFunctions,
      handlersDir: FIXTURES,
      schedules: false,
      log: silent,
    });
    const ok = await fetch(`${runner.url}/plain-string`);
    expect(ok.status).toBe(200);
    await runner.close();
    await expect(fetch(`${runner.url}/plain-string`)).rejects.toThrow();
  });

  it("cuts a request whose body is still arriving, yet lets a running handler finish and answer", async () => {
    let started: () => void = () => {};
    const handlerStarted = new Promise<void>((resolve) => {
      started = resolve;
    });
    const route = (name: string, method: "GET" | "POST"): FunctionSpec => ({
      name,
      handler: name,
      description: name,
      route: { method, path: `/${name}` },
      memoryMb: 128,
      timeoutSeconds: 5,
    });
    const runner = await startRunner({
      functions: [route("working", "GET"), route("upload", "POST")],
      schedules: false,
      log: silent,
      loadHandler: async (spec) =>
        spec.name === "working"
          ? async () => {
              started();
              await new Promise((r) => setTimeout(r, 300));
              return { statusCode: 200, body: "finished" };
            }
          : async () => "uploaded",
    });
    // A real socket that announces 100 bytes of body and sends 5 of them.
    const socket = connect(runner.port, "127.0.0.1");
    let received = "";
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString();
    });
    socket.on("error", () => {});
    const socketClosed = once(socket, "close");
    await once(socket, "connect");
    socket.write("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nhello");
    const working = fetch(`${runner.url}/working`);
    await handlerStarted; // by now the runner has long read the half-sent request's headers

    const began = Date.now();
    const closed = runner.close().then(() => "closed");
    const verdict = await Promise.race([
      closed,
      new Promise((resolve) => setTimeout(() => resolve("still open after 3 s"), 3000)),
    ]);
    socket.destroy(); // the runner's own doing, if the fix works; otherwise this test's cleanup
    expect(verdict).toBe("closed");
    expect(Date.now() - began).toBeLessThan(2500);
    const res = await working;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("finished");
    await socketClosed;
    expect(received).toBe(""); // cut off, not answered
  });

  it("lets an answer already being written reach a slow client before it closes the connection", async () => {
    const size = 5_000_000;
    const runner = await startRunner({
      functions: [
        {
          name: "big",
          handler: "big",
          description: "big",
          route: { method: "GET", path: "/big" },
          memoryMb: 128,
          timeoutSeconds: 5,
        },
      ],
      schedules: false,
      log: silent,
      loadHandler: async () => async () => ({ statusCode: 200, body: "x".repeat(size) }),
    });
    const socket = connect(runner.port, "127.0.0.1");
    socket.on("error", () => {});
    let bytes = 0;
    socket.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    const socketClosed = once(socket, "close");
    await once(socket, "connect");
    socket.write("GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n");
    await once(socket, "data"); // the answer has begun
    socket.pause(); // a slow client: the rest waits in the runner's buffers
    const closed = runner.close();
    await new Promise((r) => setTimeout(r, 500));
    socket.resume();
    await closed;
    await socketClosed;
    expect(bytes).toBeGreaterThan(size); // the whole body, and its headers
  });
});
