/**
 * The CORS header lists, one definition for the handlers' CORS middleware (local runner, direct invocation)
 * and for API Gateway's CORS configuration (infra), which replaces the handlers' CORS headers in the cloud.
 */
/** Request headers a browser may send: those the OpenAPI document uses. */
export const CORS_ALLOWED_HEADERS = [
  "authorization",
  "content-type",
  "idempotency-key",
  "if-match",
  "if-none-match",
];

/** Response headers a browser script may read. */
export const CORS_EXPOSED_HEADERS = [
  "x-request-id",
  "idempotent-replayed",
  "x-cache",
  "retry-after",
  "ratelimit",
  "ratelimit-policy",
  "etag",
  // not CORS-safelisted: without it a browser script could not read where a 201 put the new session
  "location",
];

/** How long a browser may cache a preflight's answer. */
export const CORS_MAX_AGE_SECONDS = 3600;

/**
 * Methods a preflight allows. API Gateway answers every preflight with this configured list, whatever the path's
 * routes (a method no route takes then reaches `$default`, a 405 the script can read).
 */
export const CORS_ALLOWED_METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS"] as const;

/**
 * Whether CORS_ORIGINS lets `origin` in, as API Gateway reads `allowOrigins`: `*` is every origin, and `https://*`
 * or `http://*` every origin of that scheme; anything else is one origin.
 */
export function corsOriginAllowed(origin: string, allowed: readonly string[]): boolean {
  return allowed.some(
    (a) => a === "*" || a === origin || (/^https?:\/\/\*$/.test(a) && origin.startsWith(a.slice(0, -1))),
  );
}

/**
 * The headers of API Gateway's answer to a CORS preflight (infra configures it from these lists), whatever the
 * path; undefined for an OPTIONS that is no preflight (API Gateway requires `Origin` and
 * `Access-Control-Request-Method`) or whose origin `allowed` does not let in.
 */
export function preflightHeaders(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  allowed: readonly string[],
): Record<string, string> | undefined {
  const origin = headers.origin;
  if (typeof origin !== "string" || !headers["access-control-request-method"]) return undefined;
  if (!corsOriginAllowed(origin, allowed)) return undefined;
  return {
    "access-control-allow-origin": origin,
    "access-control-allow-methods": CORS_ALLOWED_METHODS.join(","),
    "access-control-allow-headers": CORS_ALLOWED_HEADERS.join(","),
    "access-control-max-age": String(CORS_MAX_AGE_SECONDS),
    vary: "origin",
  };
}
