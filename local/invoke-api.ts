import { randomUUID } from "node:crypto";
import type { ClientContext } from "aws-lambda";
import type { FunctionSpec } from "../functions/manifest.ts";
import type { FunctionRuntime, InvokeOutcome } from "./function-runtime.ts";
import type { HttpResponse } from "./http-result.ts";
import { LOG_TAIL_BYTES } from "./invocation-log.ts";
import { functionArn } from "./lambda-context.ts";
import { toResponseJson } from "./lambda-response.ts";

/** The Lambda Invoke API path; FunctionName may be a name, `name:qualifier`, or a (partial) ARN. */
const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations\/?$/;

export const isInvokeApiPath = (path: string) => path.startsWith("/2015-03-31/");

export interface InvokeApiRequest {
  method: string;
  path: string;
  /** The query string, without `?` (the SDK may send `Qualifier=` there). */
  query?: string;
  /** Lower-cased names. */
  headers: Record<string, string | undefined>;
  body: Buffer;
}

/** `name`, `name:qualifier`, `arn:aws:lambda:region:account:function:name[:qualifier]` or `account:function:name`. */
export function parseFunctionName(raw: string): { name: string; qualifier?: string } {
  let decoded = raw;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    // a malformed escape is looked up as written, and so is not found
  }
  const parts = decoded.split(":");
  const at = parts.indexOf("function");
  const [name = "", qualifier] = at === -1 ? parts : parts.slice(at + 1);
  return qualifier ? { name, qualifier } : { name };
}

/** Invoke's request payload limits (Lambda quotas): 6 MB synchronous, 1 MB asynchronous. */
export const INVOKE_PAYLOAD_LIMITS = { sync: 6_291_456, async: 1_048_576 } as const;

/** Lambda's 413 for a payload over its limit, worded as the service words it for each invocation type. */
export function payloadTooLarge(
  size: number,
  invocationType: "sync" | "Event" = "sync",
  requestId: string = randomUUID(),
): HttpResponse {
  const message =
    invocationType === "Event"
      ? `${size} byte payload is too large for the Event invocation type (limit ${INVOKE_PAYLOAD_LIMITS.async} bytes)`
      : `Request must be smaller than ${INVOKE_PAYLOAD_LIMITS.sync} bytes for the InvokeFunction operation`;
  return awsError(413, "RequestEntityTooLargeException", message, requestId);
}

/** Lambda's 403, for a request the runner refuses before looking at it. */
export const accessDenied = (message: string, requestId: string = randomUUID()): HttpResponse =>
  awsError(403, "AccessDeniedException", message, requestId);

function awsError(statusCode: number, type: string, message: string, requestId: string): HttpResponse {
  return {
    statusCode,
    headers: { "content-type": "application/json", "x-amzn-errortype": type, "x-amzn-requestid": requestId },
    cookies: [],
    body: Buffer.from(JSON.stringify({ Type: "User", message })),
  };
}

/** X-Amz-Log-Result: the last 4 KB of the invocation's log (what it wrote, framed as Lambda frames it), base64. */
function tailLog(spec: FunctionSpec, outcome: InvokeOutcome): string {
  const id = outcome.awsRequestId;
  const ms = outcome.durationMs;
  const written = outcome.log ?? "";
  const text = [
    `START RequestId: ${id} Version: $LATEST\n`,
    written && !written.endsWith("\n") ? `${written}\n` : written,
    `END RequestId: ${id}\n`,
    `REPORT RequestId: ${id}\tDuration: ${ms.toFixed(2)} ms\tBilled Duration: ${Math.max(1, Math.ceil(ms))} ms\tMemory Size: ${spec.memoryMb} MB\t\n`,
  ].join("");
  return Buffer.from(text).subarray(-LOG_TAIL_BYTES).toString("base64");
}

function parseClientContext(header: string | undefined): ClientContext | undefined {
  if (!header) return undefined;
  try {
    return JSON.parse(Buffer.from(header, "base64").toString("utf8")) as ClientContext;
  } catch {
    return undefined;
  }
}

/** Answers `POST /2015-03-31/functions/{FunctionName}/invocations` as the Lambda service does. */
export async function handleInvokeApi(
  req: InvokeApiRequest,
  runtime: FunctionRuntime,
): Promise<HttpResponse> {
  const requestId = randomUUID();
  const match = INVOKE_PATH.exec(req.path);
  if (!match?.[1] || req.method !== "POST") {
    return awsError(
      404,
      "UnknownOperationException",
      `Unknown operation ${req.method} ${req.path}`,
      requestId,
    );
  }
  const parsed = parseFunctionName(match[1]);
  const queryQualifier = new URLSearchParams(req.query ?? "").get("Qualifier") ?? undefined;
  const qualifier = parsed.qualifier ?? queryQualifier ?? "$LATEST";
  const spec = runtime.find(parsed.name);
  // The stack publishes no versions or aliases: in AWS only $LATEST exists, so any other qualifier is not found.
  if (!spec || qualifier !== "$LATEST") {
    const arn = functionArn(parsed.name) + (qualifier === "$LATEST" ? "" : `:${qualifier}`);
    return awsError(404, "ResourceNotFoundException", `Function not found: ${arn}`, requestId);
  }

  const invocationType = req.headers["x-amz-invocation-type"] ?? "RequestResponse";
  if (!["RequestResponse", "Event", "DryRun"].includes(invocationType)) {
    return awsError(
      400,
      "InvalidParameterValueException",
      `Unsupported InvocationType: ${invocationType}`,
      requestId,
    );
  }

  if (invocationType === "Event" && req.body.length > INVOKE_PAYLOAD_LIMITS.async)
    return payloadTooLarge(req.body.length, "Event", requestId);
  if (req.body.length > INVOKE_PAYLOAD_LIMITS.sync)
    return payloadTooLarge(req.body.length, "sync", requestId);

  let event: unknown = {};
  const text = req.body.toString("utf8");
  if (text.trim() !== "") {
    try {
      event = JSON.parse(text);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      return awsError(
        400,
        "InvalidRequestContentException",
        `Could not parse request body into json: ${reason}`,
        requestId,
      );
    }
  }

  const base = { "x-amzn-requestid": requestId, "x-amz-executed-version": "$LATEST" };
  if (invocationType === "DryRun")
    return { statusCode: 204, headers: base, cookies: [], body: Buffer.alloc(0) };
  // The ARN the caller invoked: qualified when it named the qualifier (context.invokedFunctionArn says so in AWS).
  const invokedFunctionArn =
    functionArn(spec.name) + ((parsed.qualifier ?? queryQualifier) ? `:${qualifier}` : "");
  const options = { awsRequestId: requestId, invokedFunctionArn };
  if (invocationType === "Event") {
    // Accepted now, run in the background; the runtime logs a failure (Lambda would retry twice). Lambda passes
    // ClientContext to synchronous invocations only.
    void runtime.invoke(spec, event, options);
    return {
      statusCode: 202,
      headers: { "x-amzn-requestid": requestId },
      cookies: [],
      body: Buffer.alloc(0),
    };
  }

  const tail = req.headers["x-amz-log-type"] === "Tail";
  const clientContext = parseClientContext(req.headers["x-amz-client-context"]);
  const outcome = await runtime.invoke(spec, event, {
    ...options,
    captureLog: tail,
    ...(clientContext ? { clientContext } : {}),
  });
  const headers: Record<string, string> = { ...base, "content-type": "application/json" };
  if (tail) headers["x-amz-log-result"] = tailLog(spec, outcome);
  if (!outcome.ok) {
    headers["x-amz-function-error"] = "Unhandled";
    return { statusCode: 200, headers, cookies: [], body: Buffer.from(JSON.stringify(outcome.error)) };
  }
  return {
    statusCode: 200,
    headers,
    cookies: [],
    // Serialized once: by the runtime's check when it took that, else here (it cannot fail once checked).
    body: Buffer.from(outcome.json ?? toResponseJson(outcome.result)),
  };
}
