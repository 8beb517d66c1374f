import type { LambdaErrorPayload } from "./function-runtime.ts";

/** Lambda's bound on a synchronous invocation's response (its JSON), in bytes. */
export const LAMBDA_RESPONSE_LIMIT = 6_291_556;

/** The Node.js runtime's serialization of a result: JSON.stringify, with `undefined` sent as null. */
export function toResponseJson(result: unknown): string {
  return JSON.stringify(result === undefined ? null : result) ?? "null";
}

export type ResponseCheck =
  /** `json`: the result serialized whole, when checking it took that (reply with it rather than again). */
  { ok: true; json: string | undefined } | { ok: false; error: LambdaErrorPayload };

const stringifyError = (): LambdaErrorPayload => ({
  errorType: "Runtime.JSONStringifyError",
  errorMessage: "Unable to stringify response body",
  trace: [],
});

const responseTooLarge = (): LambdaErrorPayload => ({
  errorType: "Function.ResponseSizeTooLarge",
  errorMessage: `Response payload size exceeded maximum allowed payload size (${LAMBDA_RESPONSE_LIMIT} bytes).`,
  trace: [],
});

/**
 * An API Gateway result's JSON without its body, and the body's length, when the result is a plain object
 * with a string body: a string always serializes, to at most 6 bytes per UTF-16 unit (`\uXXXX`).
 */
function withoutBody(result: unknown): { rest: string; bodyLength: number } | undefined {
  if (typeof result !== "object" || result === null || Array.isArray(result)) return undefined;
  const { body, toJSON } = result as { body?: unknown; toJSON?: unknown };
  if (typeof body !== "string" || typeof toJSON === "function") return undefined;
  return { rest: JSON.stringify({ ...result, body: "" }), bodyLength: body.length };
}

/**
 * What the Node.js runtime and Lambda make of a result before anyone sees it: a value JSON.stringify
 * rejects (a BigInt, a cycle) is an Unhandled `Runtime.JSONStringifyError`, and JSON over Lambda's limit is
 * `Function.ResponseSizeTooLarge`. An HTTP result's body (often most of it) is only measured while the
 * bound is far from the limit, which keeps the HTTP path from serializing what API Gateway would unwrap.
 */
export function checkResponse(result: unknown): ResponseCheck {
  try {
    const split = withoutBody(result);
    if (split && split.rest.length * 3 + split.bodyLength * 6 <= LAMBDA_RESPONSE_LIMIT)
      return { ok: true, json: undefined };
    const json = toResponseJson(result);
    // A UTF-16 unit is at most 3 bytes of UTF-8: most results need no byte count.
    if (json.length * 3 > LAMBDA_RESPONSE_LIMIT && Buffer.byteLength(json) > LAMBDA_RESPONSE_LIMIT)
      return { ok: false, error: responseTooLarge() };
    return { ok: true, json };
  } catch {
    return { ok: false, error: stringifyError() };
  }
}
