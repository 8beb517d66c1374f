import { afterAll, expect, it, vi } from "vitest";
import { call, httpEvent } from "../helpers/lambda-events.ts";

const saved = process.env.CORS_ORIGINS;
afterAll(() => {
  if (saved === undefined) delete process.env.CORS_ORIGINS;
  else process.env.CORS_ORIGINS = saved;
  vi.resetModules();
});

// What the local runner (or a direct invocation) shows a browser; in AWS, API Gateway's CORS replaces it, and
// reads `https://*` as every https origin (infra hands it the same list).
it("CORS_ORIGINS=https://* lets in every https origin, as API Gateway's allowOrigins does, and no other", async () => {
  process.env.CORS_ORIGINS = "https://*,http://localhost:3000";
  vi.resetModules();
  const { handler } = await import("../../functions/openapi.ts");
  const allowOrigin = async (origin: string) =>
    (await call(handler, "openapi", httpEvent("GET", "/openapi.json", { headers: { origin } }))).headers[
      "access-control-allow-origin"
    ];
  expect(await allowOrigin("https://app.example.com")).toBe("https://app.example.com");
  expect(await allowOrigin("https://localhost:8443")).toBe("https://localhost:8443");
  expect(await allowOrigin("http://localhost:3000")).toBe("http://localhost:3000");
  expect(await allowOrigin("http://app.example.com")).toBeUndefined();
});
