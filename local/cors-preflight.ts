import type { IncomingHttpHeaders } from "node:http";
import { CORS_ALLOWED_HEADERS, CORS_MAX_AGE_SECONDS } from "../functions/http/cors-headers.ts";
import type { HttpResponse } from "./http-result.ts";

/**
 * OPTIONS is answered by the runner when CORS_ORIGINS is set, as API Gateway answers preflights when CORS is
 * configured (infra configures it from the same list): 204, with
 * CORS headers only for an origin listed in CORS_ORIGINS ("*" lists every origin), and the same allowed
 * headers and max age as infra configures.
 */
export function corsPreflight(
  headers: IncomingHttpHeaders,
  routeMethods: string[],
  corsOrigins: string[],
): HttpResponse {
  const response: HttpResponse = { statusCode: 204, headers: {}, cookies: [], body: Buffer.alloc(0) };
  const origin = headers.origin;
  if (!origin || !(corsOrigins.includes("*") || corsOrigins.includes(origin))) return response;
  response.headers = {
    "access-control-allow-origin": origin,
    "access-control-allow-methods": (routeMethods.length > 0
      ? routeMethods
      : ["GET", "POST", "PUT", "DELETE"]
    ).join(","),
    "access-control-allow-headers": CORS_ALLOWED_HEADERS.join(","),
    "access-control-max-age": String(CORS_MAX_AGE_SECONDS),
    vary: "origin",
  };
  return response;
}
