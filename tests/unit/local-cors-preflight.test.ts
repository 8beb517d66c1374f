import { describe, expect, it } from "vitest";
import { CORS_ALLOWED_HEADERS } from "../../functions/http/cors-headers.ts";
import { corsPreflight } from "../../local/cors-preflight.ts";

describe("corsPreflight (the runner's answer to OPTIONS, as API Gateway's CORS configuration)", () => {
  it("with * listed, allows the request's own origin, varying by origin and cached for an hour", () => {
    const res = corsPreflight({ origin: "https://any.example" }, ["GET", "POST"], ["*"]);
    expect(res.statusCode).toBe(204);
    expect(res.headers).toEqual({
      // the origin itself rather than "*", so caches must key the answer by origin
      "access-control-allow-origin": "https://any.example",
      "access-control-allow-methods": "GET,POST",
      "access-control-allow-headers": CORS_ALLOWED_HEADERS.join(","),
      "access-control-max-age": "3600",
      vary: "origin",
    });
    expect(res.body.length).toBe(0);
  });

  it("allows GET, POST, PUT and DELETE on a path no route takes", () => {
    const res = corsPreflight({ origin: "https://app.example" }, [], ["https://app.example"]);
    expect(res.headers["access-control-allow-methods"]).toBe("GET,POST,PUT,DELETE");
  });

  it("adds no CORS headers to a request without Origin, even with * listed", () => {
    const res = corsPreflight({}, ["GET"], ["*"]);
    expect(res.statusCode).toBe(204);
    expect(res.headers).toEqual({});
  });
});
