import { httpHandler } from "./http/http-handler.ts";
import { HttpProblem } from "./http/problem.ts";
import { buildRouteTable } from "./http/route-table.ts";
import { functions } from "./manifest.ts";

const routes = buildRouteTable(functions);

/**
 * API Gateway's `$default` route: a request no route matched gets the API's own problem+json, as every other
 * error does, instead of API Gateway's `{"message":"Not Found"}`. A path that has routes for other methods is a
 * 405 with `Allow`. CORS preflights never reach it (API Gateway answers them).
 */
export const handler = httpHandler({ name: "route-not-found", chat: false }, async ({ event }) => {
  const method = event.requestContext.http.method.toUpperCase();
  const path = event.rawPath;
  const match = routes.match(method, path);
  if (match.kind === "method_not_allowed") {
    const allow = match.allow.join(", ");
    throw new HttpProblem("method_not_allowed", `${method} is not allowed on ${path}; allowed: ${allow}`, {
      allow,
    });
  }
  throw new HttpProblem("route_not_found", `No route for ${method} ${path}`);
});
