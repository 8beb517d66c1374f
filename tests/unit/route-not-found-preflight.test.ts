import { afterAll, describe, expect, it, vi } from "vitest";
import { buildHttpApiEvent, newApiGatewayRequestId } from "../../local/api-gateway-event.ts";
import { call, type HttpLambda } from "../helpers/lambda-events.ts";

/**
 * API Gateway's CORS guide says `$default` catches every method's requests, OPTIONS included; whether a
 * preflight ever reaches it where CORS is configured cannot be checked here, so route-not-found answers one as
 * API Gateway would, and a browser's preflight gets a 2xx either way.
 */
const saved = process.env.CORS_ORIGINS;
afterAll(() => {
  if (saved === undefined) delete process.env.CORS_ORIGINS;
  else process.env.CORS_ORIGINS = saved;
  vi.resetModules();
});

async function routeNotFound(corsOrigins: string | undefined): Promise<HttpLambda> {
  if (corsOrigins === undefined) delete process.env.CORS_ORIGINS;
  else process.env.CORS_ORIGINS = corsOrigins;
  vi.resetModules();
  return (await import("../../functions/route-not-found.ts")).handler as HttpLambda;
}

const options = (handler: HttpLambda, path: string, headers: Record<string, string>) =>
  call(
    handler,
    "route-not-found",
    buildHttpApiEvent(
      { method: "OPTIONS", url: path, headers, body: Buffer.alloc(0), sourceIp: "127.0.0.1" },
      { routeKey: "$default", pathParameters: {}, requestId: newApiGatewayRequestId() },
    ),
  );

const ORIGIN = "https://app.example.com";
const PREFLIGHT = { origin: ORIGIN, "access-control-request-method": "PUT" };

describe("route-not-found and a CORS preflight", () => {
  it("answers a preflight from an allowed origin with 204 and the API's CORS configuration", async () => {
    const handler = await routeNotFound(ORIGIN);
    const res = await options(handler, "/sessions/3f0c2a9e-2d4b-4c43-9b0e-8d4a7f1e6c21", PREFLIGHT);
    expect(res.statusCode).toBe(204);
    expect(res.headers["access-control-allow-origin"]).toBe(ORIGIN);
    expect(res.headers["access-control-allow-methods"]).toBe("GET,POST,PUT,DELETE,OPTIONS");
    expect(res.headers["access-control-allow-headers"]).toContain("idempotency-key");
    expect(res.headers["access-control-max-age"]).toBe("3600");
  });

  it("answers an OPTIONS that is no preflight, or from another origin, as any other method it has no route for", async () => {
    const handler = await routeNotFound(ORIGIN);
    const path = "/sessions/3f0c2a9e-2d4b-4c43-9b0e-8d4a7f1e6c21";
    const noRequestMethod = await options(handler, path, { origin: ORIGIN });
    expect([noRequestMethod.statusCode, noRequestMethod.json.code]).toEqual([405, "method_not_allowed"]);
    const otherOrigin = await options(handler, path, { ...PREFLIGHT, origin: "https://evil.example" });
    expect([otherOrigin.statusCode, otherOrigin.json.code]).toEqual([405, "method_not_allowed"]);
    const unrouted = await options(handler, "/no/such/route", { origin: ORIGIN });
    expect([unrouted.statusCode, unrouted.json.code]).toEqual([404, "route_not_found"]);
  });

  it("answers no preflight where CORS is not configured", async () => {
    const handler = await routeNotFound(undefined);
    const res = await options(handler, "/sessions/create", PREFLIGHT);
    expect([res.statusCode, res.json.code]).toEqual([405, "method_not_allowed"]);
  });
});
