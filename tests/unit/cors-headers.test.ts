import { describe, expect, it } from "vitest";
import { CORS_ALLOWED_HEADERS, CORS_EXPOSED_HEADERS } from "../../functions/http/cors-headers.ts";
import { buildOpenApiDocument } from "../../functions/http/openapi-document.ts";

type Operation = {
  security?: unknown[];
  parameters?: { in: string; name: string }[];
  requestBody?: unknown;
  responses: Record<string, { headers?: Record<string, unknown> }>;
};
const operations = Object.values(
  buildOpenApiDocument().paths as Record<string, Record<string, Operation>>,
).flatMap((byMethod) => Object.values(byMethod));

// The lists are checked against what the API documents, not against themselves: a header dropped from a list
// is one a browser client can no longer send, or read.
describe("CORS header lists against the OpenAPI document", () => {
  it("a browser may send every request header an operation documents", () => {
    const sent = new Set<string>();
    for (const op of operations) {
      for (const p of op.parameters ?? []) if (p.in === "header") sent.add(p.name.toLowerCase());
      if (op.security?.length) sent.add("authorization");
      // application/json is no CORS-safelisted content type: it needs the preflight's permission
      if (op.requestBody) sent.add("content-type");
    }
    expect([...sent].sort()).toEqual([
      "authorization",
      "content-type",
      "idempotency-key",
      "if-match",
      "if-none-match",
    ]);
    for (const h of sent) expect(CORS_ALLOWED_HEADERS, h).toContain(h);
  });

  it("a browser script may read every response header an operation documents", () => {
    // WWW-Authenticate (401) and Allow (405) repeat what the problem's code says
    const notForScripts = new Set(["www-authenticate", "allow"]);
    const read = new Set<string>();
    for (const op of operations)
      for (const res of Object.values(op.responses))
        for (const h of Object.keys(res.headers ?? {})) read.add(h.toLowerCase());
    for (const h of ["etag", "idempotent-replayed", "x-cache", "location", "retry-after", "ratelimit"])
      expect(read, `${h} is documented`).toContain(h);
    for (const h of read) if (!notForScripts.has(h)) expect(CORS_EXPOSED_HEADERS, h).toContain(h);
  });
});
