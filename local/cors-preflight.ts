import type { IncomingHttpHeaders } from "node:http";
import { preflightHeaders } from "../functions/http/cors-headers.ts";
import type { HttpResponse } from "./http-result.ts";

/**
 * OPTIONS is answered by the runner when CORS_ORIGINS is set, as API Gateway answers preflights when CORS is
 * configured (infra configures it from the same lists): 204, with CORS headers only for a preflight from an origin
 * CORS_ORIGINS lets in (preflightHeaders).
 */
export function corsPreflight(headers: IncomingHttpHeaders, corsOrigins: string[]): HttpResponse {
  return {
    statusCode: 204,
    headers: preflightHeaders(headers, corsOrigins) ?? {},
    cookies: [],
    body: Buffer.alloc(0),
  };
}
