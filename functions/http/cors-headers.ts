/**
 * The CORS header lists, one definition for the handlers' CORS middleware (local runner, direct invocation)
 * and for API Gateway's CORS configuration (infra), which replaces the handlers' CORS headers in the cloud.
 */
/** Request headers a browser may send: those the OpenAPI document uses. */
export const CORS_ALLOWED_HEADERS = ["authorization", "content-type", "idempotency-key", "if-match"];

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
