import { createServer, type IncomingMessage, maxHeaderSize, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { finished } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { buildRouteTable } from "../functions/http/route-table.ts";
import { type FunctionSpec, functions as manifestFunctions } from "../functions/manifest.ts";
import { checkFunctions } from "../functions/manifest-check.ts";
import { resetConfig } from "../layers/chat/config.ts";
import { buildHttpApiEvent, newApiGatewayRequestId } from "./api-gateway-event.ts";
import { corsPreflight } from "./cors-preflight.ts";
import {
  createFunctionRuntime,
  type HandlerLoader,
  type LambdaErrorPayload,
  moduleHandlerLoader,
} from "./function-runtime.ts";
import { type HttpResponse, internalServerError, jsonResponse, toHttpResponse } from "./http-result.ts";
import {
  accessDenied,
  handleInvokeApi,
  INVOKE_PAYLOAD_LIMITS,
  isInvokeApiPath,
  payloadTooLarge,
} from "./invoke-api.ts";
import { consoleLog, type RunnerLog } from "./log.ts";
import { requestGuard } from "./request-guard.ts";
import { type ScheduleOptions, type Schedules, startSchedules } from "./schedules.ts";

export const DEFAULT_HANDLERS_DIR = fileURLToPath(new URL("../functions", import.meta.url));
/** API Gateway HTTP API's payload limit. */
const MAX_BODY_BYTES = 10 * 1024 * 1024;
/**
 * What a request adds to its body in the event: its headers (at most Node's maxHeaderSize), some twice (the
 * user agent is also in requestContext), each byte at most 2 in JSON (a quote, a byte read as Latin-1), and
 * the event's own fields.
 */
const EVENT_OVERHEAD_BYTES = 4 * maxHeaderSize + 16 * 1024;

/**
 * Whether the event is over Lambda's synchronous payload limit: API Gateway accepts a 10 MB body, but the function
 * cannot be invoked with an event past 6 MB (a base64 body reaches it at about 4.5 MB). Measured only for a body
 * that could get there (JSON escapes a byte into at most 6), so small requests pay nothing.
 */
function eventTooLarge(event: unknown, bodyBytes: number): boolean {
  if (bodyBytes * 6 + EVENT_OVERHEAD_BYTES <= INVOKE_PAYLOAD_LIMITS.sync) return false;
  return Buffer.byteLength(JSON.stringify(event)) > INVOKE_PAYLOAD_LIMITS.sync;
}
/** How long close() lets answers already being written reach their clients before it cuts the connections. */
const CLOSE_GRACE_MS = 2_000;

export interface RunnerOptions {
  port?: number;
  host?: string;
  /** Defaults to the manifest. */
  functions?: readonly FunctionSpec[];
  /** Where `<handler>.ts` files live; defaults to functions/. Ignored when loadHandler is given. */
  handlersDir?: string;
  loadHandler?: HandlerLoader;
  /** false, or options such as a faster interval for tests. Env LOCAL_SCHEDULES=off also turns them off. */
  schedules?: boolean | ScheduleOptions;
  /** Origins whose CORS preflight gets an answer; defaults to env CORS_ORIGINS (comma-separated). */
  corsOrigins?: string[];
  /**
   * Host names answered besides loopback ones and `host` (e.g. a compose service name); defaults to env
   * LOCAL_ALLOWED_HOSTS (comma-separated). Others get 403: see request-guard.ts.
   */
  allowedHosts?: string[];
  log?: RunnerLog;
}

export interface Runner {
  url: string;
  port: number;
  /** Invokes a function by name (RequestResponse); rejects with LambdaInvokeError when the function fails. */
  invoke(name: string, payload?: unknown): Promise<unknown>;
  /**
   * Stops accepting, cuts requests whose body is still arriving, lets invocations in flight finish (each
   * within its function's timeout) and their answers go out (within a grace), then closes every connection.
   */
  close(): Promise<void>;
}

export class LambdaInvokeError extends Error {
  override name = "LambdaInvokeError";
  readonly payload: LambdaErrorPayload;
  constructor(functionName: string, payload: LambdaErrorPayload) {
    super(`${functionName}: ${payload.errorType}: ${payload.errorMessage}`);
    this.payload = payload;
  }
}

const envList = (v: string | undefined) =>
  (v ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/** The request's body, or undefined past `limit` bytes; rejects if the request is cut off before its end. */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  if (!req.complete) throw new Error("request cut off before the end of its body");
  return Buffer.concat(chunks);
}

/** Resolves when every promise has settled or `ms` have passed, whichever is first. */
async function settledWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([Promise.allSettled(promises), late]);
  clearTimeout(timer);
}

function writeResponse(res: ServerResponse, response: HttpResponse): void {
  res.statusCode = response.statusCode;
  for (const [name, value] of Object.entries(response.headers)) res.setHeader(name, value);
  if (response.cookies.length > 0) res.setHeader("set-cookie", response.cookies);
  res.end(response.body);
}

/** Serves the functions over HTTP like API Gateway (payload 2.0) and answers the Lambda Invoke API. */
export async function startRunner(options: RunnerOptions = {}): Promise<Runner> {
  const functions = options.functions ?? manifestFunctions;
  checkFunctions(functions);
  const log = options.log ?? consoleLog;
  const corsOrigins = options.corsOrigins ?? envList(process.env.CORS_ORIGINS);
  const refusal = requestGuard(
    options.host ?? "127.0.0.1",
    options.allowedHosts ?? envList(process.env.LOCAL_ALLOWED_HOSTS),
  );
  const loadHandler = options.loadHandler ?? moduleHandlerLoader(options.handlersDir ?? DEFAULT_HANDLERS_DIR);
  const runtime = createFunctionRuntime({ functions, loadHandler, log });
  const routes = buildRouteTable(functions);
  const defaultRoute = functions.find((f) => f.defaultRoute);

  async function respond(req: IncomingMessage, requestId: string): Promise<HttpResponse> {
    const url = req.url ?? "/";
    const [path = "/", query] = url.split("?", 2);
    const method = req.method ?? "GET";
    const invokeApi = isInvokeApiPath(path);
    receiving.add(req);
    let body: Buffer | undefined;
    try {
      body = await readBody(req, invokeApi ? INVOKE_PAYLOAD_LIMITS.sync : MAX_BODY_BYTES);
    } finally {
      receiving.delete(req);
    }
    if (!body) {
      // The rest of the body was not read: the connection cannot carry another request.
      const refused = invokeApi
        ? payloadTooLarge(INVOKE_PAYLOAD_LIMITS.sync + 1)
        : jsonResponse(413, { message: "Request Entity Too Large" });
      refused.headers.connection = "close";
      return refused;
    }
    // After the body, read like any other: a refused request leaves its connection usable and, should close()
    // come, is cut off like any other. Nothing has run yet.
    const forbidden = refusal(req.headers, invokeApi);
    if (forbidden) return invokeApi ? accessDenied(forbidden) : jsonResponse(403, { message: forbidden });

    if (invokeApi) {
      const headers = Object.fromEntries(
        Object.entries(req.headersDistinct).map(([k, v]) => [k, v?.join(",")]),
      );
      return handleInvokeApi({ method, path, query, headers, body }, runtime);
    }
    // API Gateway answers preflights itself only where CORS is configured (infra: CORS_ORIGINS non-empty);
    // otherwise an OPTIONS request is routed like any other (to `$default`: 405 with Allow).
    if (method === "OPTIONS" && corsOrigins.length > 0) return corsPreflight(req.headers, corsOrigins);

    const match = routes.match(method, path);
    // No route: API Gateway sends the request to the `$default` route's function, or answers 404 itself.
    const target =
      match.kind === "match"
        ? { fn: match.fn, routeKey: match.routeKey, pathParameters: match.pathParameters }
        : defaultRoute
          ? { fn: defaultRoute, routeKey: "$default", pathParameters: {} }
          : undefined;
    if (!target) return jsonResponse(404, { message: "Not Found" });

    const event = buildHttpApiEvent(
      {
        method,
        url,
        headers: req.headersDistinct,
        body,
        sourceIp: (req.socket.remoteAddress ?? "127.0.0.1").replace(/^::ffff:/, ""),
        protocol: `HTTP/${req.httpVersion}`,
        scheme: "http",
        port: req.socket.localPort ?? port,
      },
      { routeKey: target.routeKey, pathParameters: target.pathParameters, requestId },
    );
    // The function never runs; the runner answers as for a body over API Gateway's own limit.
    if (eventTooLarge(event, body.length)) return jsonResponse(413, { message: "Request Entity Too Large" });
    const outcome = await runtime.invoke(target.fn, event);
    if (outcome.ok) return toHttpResponse(outcome.result, outcome.json);
    // Locally the timeout is spelled out rather than hidden behind a bare gateway error.
    if (outcome.timedOut) {
      return jsonResponse(504, {
        message: `Task timed out after ${target.fn.timeoutSeconds.toFixed(2)} seconds`,
      });
    }
    return internalServerError();
  }

  const requests = new Set<Promise<void>>();
  /** Requests whose body is still arriving: close() cuts them off, as a client may never send the rest. */
  const receiving = new Set<IncomingMessage>();
  let closed: Promise<void> | undefined;
  const server = createServer((req, res) => {
    // Done when the answer is out (written to the socket), not when it is handed over: close() waits for that.
    const handling = handle(req, res)
      .catch((err) => {
        log("error", `could not answer ${req.method} ${req.url}`, { error: String(err) });
        res.destroy();
      })
      .then(() => finished(res))
      .catch(() => {}); // the client went away
    requests.add(handling);
    handling.finally(() => requests.delete(handling));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const requestId = newApiGatewayRequestId();
    let response: HttpResponse;
    try {
      response = await respond(req, requestId);
    } catch (err) {
      // The client went away, or close() cut it off, before its body arrived: there is nobody to answer.
      if (!req.complete) return;
      log("error", `runner failed on ${req.method} ${req.url}`, { error: String(err) });
      response = internalServerError();
    }
    // Once close() has begun, a kept-alive connection carries no further request.
    if (closed) response.headers.connection = "close";
    if (!isInvokeApiPath(req.url ?? "/")) {
      // API Gateway's own header; x-request-id only if the handler did not set one.
      response.headers["x-request-id"] ??= requestId;
      response.headers["apigw-requestid"] = requestId;
    }
    try {
      writeResponse(res, response);
    } catch (err) {
      // e.g. a header value node refuses; the handler's response cannot be sent as it is
      log("error", `bad response from ${req.method} ${req.url}`, { error: String(err) });
      if (!res.headersSent) {
        for (const name of res.getHeaderNames()) res.removeHeader(name);
        const fallback = internalServerError();
        fallback.headers["x-request-id"] = requestId;
        fallback.headers["apigw-requestid"] = requestId;
        writeResponse(res, fallback);
      }
    }
    log("info", `${req.method} ${req.url} ${response.statusCode} ${Date.now() - started}ms`);
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host ?? "127.0.0.1";
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;

  const schedulesOn = options.schedules !== false && process.env.LOCAL_SCHEDULES !== "off";
  // The canary calls the deployed /health (the stack sets HEALTH_URL); here it is this runner's, until it stops.
  const ownHealthUrl = schedulesOn && !process.env.HEALTH_URL ? `${url}/health` : undefined;
  if (ownHealthUrl) {
    process.env.HEALTH_URL = ownHealthUrl;
    resetConfig();
  }
  const schedules: Schedules | undefined = schedulesOn
    ? startSchedules(functions, runtime, log, typeof options.schedules === "object" ? options.schedules : {})
    : undefined;

  return {
    url,
    port,
    async invoke(name, payload = {}) {
      const spec = runtime.find(name);
      if (!spec) throw new Error(`Function not found: ${name}`);
      const outcome = await runtime.invoke(spec, payload);
      if (!outcome.ok) throw new LambdaInvokeError(name, outcome.error);
      return outcome.result;
    },
    close() {
      closed ??= (async () => {
        // Node's close() first closes the connections it counts as idle, and one whose answer is ended but still
        // being written to a slow client counts: that answer would be cut. Every connection closes with
        // closeAllConnections() below instead, once the answers are out.
        server.closeIdleConnections = () => {};
        const stopped = new Promise<void>((resolve) => server.close(() => resolve())); // accepts no more
        for (const req of receiving) req.destroy();
        await schedules?.stop();
        await runtime.drain(); // bounded: each invocation ends by its function's timeout
        await settledWithin([...requests], CLOSE_GRACE_MS);
        server.closeAllConnections();
        await stopped;
        if (ownHealthUrl && process.env.HEALTH_URL === ownHealthUrl) {
          delete process.env.HEALTH_URL;
          resetConfig();
        }
      })();
      return closed;
    },
  };
}
