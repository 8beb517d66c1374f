import { describe, expect, it } from "vitest";
import { buildRouteTable } from "../../functions/http/route-table.ts";
import { functions } from "../../functions/manifest.ts";

const routes = buildRouteTable(functions);

describe("route table from the manifest", () => {
  it("matches a template and decodes its parameters", () => {
    const m = routes.match("GET", "/sessions/a%2Fb%20c/messages");
    expect(m).toMatchObject({
      kind: "match",
      routeKey: "GET /sessions/{session_id}/messages",
      pathParameters: { session_id: "a/b c" },
    });
    if (m.kind === "match") expect(m.fn.name).toBe("session-messages");
  });

  it("prefers the literal route over a parameter", () => {
    const m = routes.match("POST", "/sessions/create");
    expect(m.kind === "match" && m.fn.name).toBe("sessions-create");
    const asParam = routes.match("GET", "/sessions/create");
    expect(asParam.kind === "match" && asParam.pathParameters).toEqual({ session_id: "create" });
  });

  it("tells a wrong method (with the allowed ones) from an unknown path", () => {
    expect(routes.match("PUT", "/sessions/123")).toEqual({
      kind: "method_not_allowed",
      allow: ["GET", "DELETE"],
    });
    expect(routes.match("GET", "/sessions/123/extra/segment")).toEqual({ kind: "not_found" });
    expect(routes.match("GET", "/health/")).toEqual({ kind: "not_found" });
  });

  it("ignores functions without a route", () => {
    expect(routes.match("POST", "/outbox-relay")).toEqual({ kind: "not_found" });
    expect(routes.match("POST", "/health")).toEqual({ kind: "method_not_allowed", allow: ["GET"] });
  });
});
