import { describe, expect, it } from "vitest";
import { CORS_ALLOWED_HEADERS } from "../../functions/http/cors-headers.ts";
import { corsPreflight } from "../../local/cors-preflight.ts";

const preflight = (origin: string, method = "POST") => ({
  origin,
  "access-control-request-method": method,
});

describe("corsPreflight (the runner's answer to OPTIONS, as API Gateway's CORS configuration)", () => {
  it("with * listed, allows the request's own origin, varying by origin and cached for an hour", () => {
    const res = corsPreflight(preflight("https://any.example"), ["*"]);
    expect(res.statusCode).toBe(204);
    expect(res.headers).toEqual({
      // the origin itself rather than "*", so caches must key the answer by origin
      "access-control-allow-origin": "https://any.example",
      "access-control-allow-methods": "GET,POST,PUT,DELETE,OPTIONS",
      "access-control-allow-headers": CORS_ALLOWED_HEADERS.join(","),
      "access-control-max-age": "3600",
      vary: "origin",
    });
    expect(res.body.length).toBe(0);
  });

  it("allows the methods infra configures, whatever the method asked for: API Gateway's CORS knows no routes", () => {
    const res = corsPreflight(preflight("https://app.example", "PATCH"), ["https://app.example"]);
    expect(res.headers["access-control-allow-methods"]).toBe("GET,POST,PUT,DELETE,OPTIONS");
  });

  it("adds no CORS headers to a request without Origin, even with * listed", () => {
    const res = corsPreflight({}, ["*"]);
    expect(res.statusCode).toBe(204);
    expect(res.headers).toEqual({});
  });

  it("adds no CORS headers to an OPTIONS without Access-Control-Request-Method: API Gateway's are for preflights", () => {
    const res = corsPreflight({ origin: "https://app.example" }, ["https://app.example"]);
    expect(res.statusCode).toBe(204);
    expect(res.headers).toEqual({});
  });

  it("reads https://* and http://* as API Gateway does: every origin of that scheme", () => {
    const allowed = (origin: string, list: string[]) =>
      corsPreflight(preflight(origin), list).headers["access-control-allow-origin"];
    expect(allowed("https://app.example.com", ["https://*"])).toBe("https://app.example.com");
    expect(allowed("https://localhost:3000", ["https://*"])).toBe("https://localhost:3000");
    expect(allowed("http://app.example.com", ["https://*"])).toBeUndefined();
    expect(allowed("http://app.example.com:8080", ["http://*"])).toBe("http://app.example.com:8080");
    expect(allowed("https://app.example.com", ["https://other.example"])).toBeUndefined();
  });
});
