import { config } from "#chat/config.ts";
import { preflightHeaders } from "./http/cors-headers.ts";
import { httpHandler } from "./http/http-handler.ts";
import { HttpProblem } from "./http/problem.ts";
import { buildRouteTable } from "./http/route-table.ts";
import { functions } from "./manifest.ts";

const routes = buildRouteTable(functions);

/**
 * API Gateway's `$default` route: a request no route matched gets the API's own problem+json, as every other
 * error does, instead of API Gateway's `{"message":"Not Found"}`. A path that has routes for other methods is a
 * 405 with `Allow`.
 */
export const handler = httpHandler({ name: "route-not-found", chat: false }, async ({ event }) => {
  const method = event.requestContext.http.method.toUpperCase();
  const path = event.rawPath;
  // API Gateway answers CORS preflights where CORS is configured, yet its CORS guide says `$default` catches every
  // method's requests, OPTIONS included: should a preflight reach this function, it must still get a 2xx (a 405
  // fails every browser's preflight, whatever CORS headers API Gateway then adds).
  if (method === "OPTIONS") {
    const headers = preflightHeaders(event.headers, config().CORS_ORIGINS);
    if (headers) return { status: 204, headers };
  }
  const match = routes.match(method, path);
  if (match.kind === "method_not_allowed") {
    const allow = match.allow.join(", ");
    throw new HttpProblem("method_not_allowed", `${method} is not allowed on ${path}; allowed: ${allow}`, {
      allow,
    });
  }
  throw new HttpProblem("route_not_found", `No route for ${method} ${path}`);
});
