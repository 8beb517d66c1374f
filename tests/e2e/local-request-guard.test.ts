import { request } from "node:http";
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { FunctionSpec } from "../../functions/manifest.ts";
import type { LambdaHandler } from "../../local/function-runtime.ts";
import { type Runner, startRunner } from "../../local/server.ts";
import { SIGV4_AUTHORIZATION } from "../helpers/runner-process.ts";

/**
 * A web page the developer visits can POST to the runner (a text/plain POST needs no preflight), and read the
 * answers after rebinding its own host name to 127.0.0.1. The runner answers only loopback (or configured)
 * hosts, and its Lambda Invoke API only what the AWS SDK sends.
 */
const spec = (name: string, route?: FunctionSpec["route"]): FunctionSpec => ({
  name,
  handler: name,
  description: name,
  ...(route ? { route } : {}),
  memoryMb: 128,
  timeoutSeconds: 3,
});
const functions = [spec("counter"), spec("notes", { method: "POST", path: "/notes" })];
const calls: string[] = [];
const handler =
  (name: string): LambdaHandler =>
  async () => {
    calls.push(name);
    return { statusCode: 200, body: JSON.stringify({ ran: name }) };
  };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request to 127.0.0.1:`port` with exactly these headers (Host included: fetch would not send a foreign one). */
function send(port: number, path: string, headers: Record<string, string>, body = "{}"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method: "POST", headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const INVOKE = "/2015-03-31/functions/counter/invocations";
let runner: Runner;
let host: string;

beforeAll(async () => {
  runner = await startRunner({
    functions,
    schedules: false,
    log: () => {},
    loadHandler: async (s) => handler(s.name),
  });
  host = `127.0.0.1:${runner.port}`;
});
afterAll(() => runner?.close());

describe("the runner's Host check", () => {
  it("refuses a foreign Host with 403 in the runner's JSON shape, on a chat route and on Invoke, running nothing", async () => {
    calls.length = 0;
    for (const foreign of [
      "evil.example",
      `evil.example:${runner.port}`,
      `localhost.evil.example:${runner.port}`,
    ]) {
      const route = await send(runner.port, "/notes", { host: foreign, "content-type": "text/plain" });
      expect(route.status, foreign).toBe(403);
      expect(route.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(route.body)).toEqual({ message: expect.stringMatching(/^Forbidden: /) });
      expect(route.headers["apigw-requestid"]).toBeTruthy();

      const invoke = await send(runner.port, INVOKE, { host: foreign, authorization: SIGV4_AUTHORIZATION });
      expect(invoke.status, foreign).toBe(403);
      expect(invoke.headers["x-amzn-errortype"]).toBe("AccessDeniedException");
      expect(JSON.parse(invoke.body)).toEqual({
        Type: "User",
        message: expect.stringMatching(/^Forbidden: /),
      });
    }
    expect(calls).toEqual([]);

    // the same requests to a loopback name run
    const route = await send(runner.port, "/notes", {
      host: `localhost:${runner.port}`,
      "content-type": "text/plain",
    });
    expect(route.status).toBe(200);
    const invoke = await send(runner.port, INVOKE, {
      host: `[::1]:${runner.port}`,
      authorization: SIGV4_AUTHORIZATION,
    });
    expect(invoke.status).toBe(200);
    expect(calls).toEqual(["notes", "counter"]);
  });

  it("answers the hosts listed in LOCAL_ALLOWED_HOSTS (e.g. a compose service name)", async () => {
    vi.stubEnv("LOCAL_ALLOWED_HOSTS", "app, chat.test");
    const listed = await startRunner({
      functions,
      schedules: false,
      log: () => {},
      loadHandler: async (s) => handler(s.name),
    });
    try {
      const headers = { "content-type": "application/json" };
      expect((await send(listed.port, "/notes", { ...headers, host: "app:8000" })).status).toBe(200);
      expect((await send(listed.port, "/notes", { ...headers, host: "chat.test" })).status).toBe(200);
      expect((await send(listed.port, "/notes", { ...headers, host: "evil.example" })).status).toBe(403);
    } finally {
      vi.unstubAllEnvs();
      await listed.close();
    }
  });
});

describe("the Lambda Invoke API's refusal of what is not the AWS SDK", () => {
  it.each([
    [
      "a browser's simple POST (Origin, text/plain, no Authorization)",
      { origin: "https://evil.example", "content-type": "text/plain" },
    ],
    [
      "an Origin, even with SigV4's Authorization",
      { origin: "https://evil.example", authorization: SIGV4_AUTHORIZATION },
    ],
    ["no Authorization", { "content-type": "application/json" }],
    ["another Authorization scheme", { authorization: "Bearer token" }],
    ["an Event (async) invocation without Authorization", { "x-amz-invocation-type": "Event" }],
  ])("refuses %s with 403 AccessDeniedException and runs nothing", async (_, headers) => {
    calls.length = 0;
    const res = await send(runner.port, INVOKE, { host, ...headers });
    expect(res.status).toBe(403);
    expect(res.headers["x-amzn-errortype"]).toBe("AccessDeniedException");
    expect(JSON.parse(res.body)).toEqual({
      Type: "User",
      message: expect.stringMatching(/^Forbidden: the local runner's Lambda Invoke API/),
    });
    // a RequestResponse that ran would have run before its answer
    const allowed = await send(runner.port, INVOKE, { host, authorization: SIGV4_AUTHORIZATION });
    expect(allowed.status).toBe(200);
    expect(calls).toEqual(["counter"]);
  });

  it("still answers @aws-sdk/client-lambda, at 127.0.0.1 and at localhost", async () => {
    for (const endpoint of [runner.url, `http://localhost:${runner.port}`]) {
      calls.length = 0;
      const lambda = new LambdaClient({
        endpoint,
        region: "us-east-1",
        credentials: { accessKeyId: "x", secretAccessKey: "x" },
        maxAttempts: 1,
      });
      try {
        const out = await lambda.send(
          new InvokeCommand({ FunctionName: "counter", Payload: new TextEncoder().encode("{}") }),
        );
        expect(out.StatusCode, endpoint).toBe(200);
        expect(JSON.parse(new TextDecoder().decode(out.Payload))).toMatchObject({ statusCode: 200 });
        expect(calls).toEqual(["counter"]);
      } finally {
        lambda.destroy();
      }
    }
  });

  it("leaves Origin to the chat API routes: browsers are their clients", async () => {
    calls.length = 0;
    const res = await send(runner.port, "/notes", {
      host,
      origin: "https://app.example",
      "content-type": "application/json",
    });
    expect(res.status).toBe(200);
    expect(calls).toEqual(["notes"]);
  });
});
