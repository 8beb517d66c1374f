import { isUtf8 } from "node:buffer";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { pooledRandomBytes } from "#chat/random.ts";
import { LOCAL_ACCOUNT_ID } from "./lambda-context.ts";

/** What the runner read off the socket: enough to build the API Gateway event, nothing node-specific. */
export interface RawHttpRequest {
  method: string;
  /** Path and query exactly as sent, e.g. `/sessions/a%20b?x=1&x=2`. */
  url: string;
  /** Header name (any case) → its values, as node's `req.headersDistinct`. */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  sourceIp: string;
  /** e.g. "HTTP/1.1". */
  protocol?: string;
  /** The scheme and port the client reached the API on; API Gateway's own (HTTPS on 443) by default. */
  scheme?: "http" | "https";
  port?: number;
}

export interface RouteInfo {
  /** "METHOD /path/{param}". */
  routeKey: string;
  pathParameters: Record<string, string>;
  /** API Gateway's own request id (not the Lambda awsRequestId). */
  requestId: string;
  now?: Date;
}

/** API Gateway request ids look like `JKJaXmPLvHcESHA=`: 11 random bytes in base64. */
export function newApiGatewayRequestId(): string {
  return pooledRandomBytes(11).toString("base64");
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n: number) => String(n).padStart(2, "0");

/** requestContext.time: "26/Nov/2026:05:33:00 +0000" (always UTC). */
export function formatRequestTime(d: Date): string {
  const date = `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}`;
  return `${date}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

// Media types API Gateway hands over as text; every other body (or one with no content-type) arrives base64.
const TEXT_TYPE =
  /^(text\/|application\/(json|xml|javascript|x-ndjson)\b|application\/[\w.+-]+\+(json|xml)\b)/i;

export function isTextContentType(contentType: string | undefined): boolean {
  return !!contentType && TEXT_TYPE.test(contentType.trim());
}

/**
 * Repeated names joined with commas, as API Gateway does, into an object whose every name is an own property, as
 * in the JSON event Lambda parses: `__proto__` or `constructor` is a name like any other (assigned to a plain
 * object, the first would be dropped and the second joined onto Object's constructor).
 */
function joined(entries: Iterable<[string, string]>): Record<string, string> {
  const byName = new Map<string, string>();
  for (const [name, value] of entries) {
    const before = byName.get(name);
    byName.set(name, before === undefined ? value : `${before},${value}`);
  }
  return Object.fromEntries(byName);
}

function lowerCaseHeaders(headers: RawHttpRequest["headers"]): Record<string, string> {
  return joined(
    Object.entries(headers).flatMap(([name, value]): [string, string][] =>
      value === undefined ? [] : [[name.toLowerCase(), Array.isArray(value) ? value.join(",") : value]],
    ),
  );
}

function queryParameters(rawQueryString: string): Record<string, string> | undefined {
  if (!rawQueryString) return undefined;
  const out = joined(new URLSearchParams(rawQueryString));
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Builds the HTTP API payload format 2.0 event for a request that matched a route. */
export function buildHttpApiEvent(req: RawHttpRequest, route: RouteInfo): APIGatewayProxyEventV2 {
  const now = route.now ?? new Date();
  const queryAt = req.url.indexOf("?");
  const rawPath = queryAt === -1 ? req.url : req.url.slice(0, queryAt);
  const rawQueryString = queryAt === -1 ? "" : req.url.slice(queryAt + 1);
  const headers = lowerCaseHeaders(req.headers);

  // API Gateway moves the cookie header into `cookies` and drops it from `headers`.
  const cookieHeader = headers.cookie;
  delete headers.cookie;
  const cookies = cookieHeader
    ?.split(/[;,]/)
    .map((c) => c.trim())
    .filter(Boolean);

  // API Gateway's own: the client's address appended to any x-forwarded-for it sent (as a proxy appends it),
  // and how the client reached the API.
  const forwardedFor = headers["x-forwarded-for"];
  headers["x-forwarded-for"] = forwardedFor ? `${forwardedFor}, ${req.sourceIp}` : req.sourceIp;
  headers["x-forwarded-proto"] = req.scheme ?? "https";
  headers["x-forwarded-port"] = String(req.port ?? 443);

  const domainName = (headers.host ?? "localhost").replace(/:\d+$/, "");
  const event: APIGatewayProxyEventV2 = {
    version: "2.0",
    routeKey: route.routeKey,
    rawPath,
    rawQueryString,
    headers,
    requestContext: {
      accountId: LOCAL_ACCOUNT_ID,
      apiId: "local",
      domainName,
      domainPrefix: domainName.split(".")[0] ?? domainName,
      http: {
        method: req.method.toUpperCase(),
        path: rawPath,
        protocol: req.protocol ?? "HTTP/1.1",
        sourceIp: req.sourceIp,
        userAgent: headers["user-agent"] ?? "",
      },
      requestId: route.requestId,
      routeKey: route.routeKey,
      stage: "$default",
      time: formatRequestTime(now),
      timeEpoch: now.getTime(),
    },
    isBase64Encoded: false,
  };
  if (cookies && cookies.length > 0) event.cookies = cookies;
  const query = queryParameters(rawQueryString);
  if (query) event.queryStringParameters = query;
  if (Object.keys(route.pathParameters).length > 0) event.pathParameters = { ...route.pathParameters };
  if (req.body.length > 0) {
    // a "text" body that is no UTF-8 goes base64 too: decoded as text its bad bytes would become U+FFFD, and the
    // handler could not refuse what it cannot see (a JSON string holding them would parse, and be stored)
    const text = isTextContentType(headers["content-type"]) && isUtf8(req.body);
    event.body = req.body.toString(text ? "utf8" : "base64");
    event.isBase64Encoded = !text;
  }
  return event;
}
