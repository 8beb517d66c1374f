/** An HTTP response ready to write: header names lower-cased, one `set-cookie` per cookie. */
export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  cookies: string[];
  body: Buffer;
}

export function jsonResponse(
  statusCode: number,
  value: unknown,
  contentType = "application/json",
): HttpResponse {
  return {
    statusCode,
    headers: { "content-type": contentType },
    cookies: [],
    body: Buffer.from(JSON.stringify(value) ?? "null"),
  };
}

/** What API Gateway answers when the integration fails or returns something it cannot read. */
export const internalServerError = (): HttpResponse =>
  jsonResponse(500, { message: "Internal Server Error" });

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

// Set by the runner's framing, never taken from the handler.
const HOP_BY_HOP = new Set(["content-length", "transfer-encoding", "connection"]);

/**
 * Maps a handler's return value to HTTP as API Gateway HTTP API (payload 2.0) does: an object with
 * `statusCode` is a structured response; any other value is the 200 JSON body (a string as-is).
 * `json`: the result's JSON if the runtime already made it, so it is not made twice.
 */
export function toHttpResponse(result: unknown, json?: string): HttpResponse {
  // API Gateway reads the result's JSON, where a statusCode that is undefined is no statusCode at all
  if (!isRecord(result) || result.statusCode === undefined) {
    const body = typeof result === "string" ? result : (json ?? JSON.stringify(result) ?? "null");
    return {
      statusCode: 200,
      headers: { "content-type": "application/json" },
      cookies: [],
      body: Buffer.from(body),
    };
  }
  const { statusCode, headers = {}, cookies = [], body, isBase64Encoded } = result;
  const validStatus =
    typeof statusCode === "number" && Number.isInteger(statusCode) && statusCode >= 100 && statusCode <= 599;
  const validBody = body === undefined || body === null || typeof body === "string";
  const validCookies = Array.isArray(cookies) && cookies.every((c) => typeof c === "string");
  if (!validStatus || !validBody || !isRecord(headers) || !validCookies) return internalServerError();

  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const key = name.toLowerCase();
    if (value === undefined || value === null || HOP_BY_HOP.has(key)) continue;
    out[key] = String(value);
  }
  const text = typeof body === "string" ? body : "";
  return {
    statusCode,
    headers: out,
    cookies: cookies as string[],
    body: Buffer.from(text, isBase64Encoded === true ? "base64" : "utf8"),
  };
}
