import { readFileSync } from "node:fs";
import { afterAll, expect, it, vi } from "vitest";
import { call, httpEvent } from "../helpers/lambda-events.ts";

const saved = process.env.SERVICE_VERSION;
afterAll(() => {
  if (saved === undefined) delete process.env.SERVICE_VERSION;
  else process.env.SERVICE_VERSION = saved;
  vi.resetModules();
});

// The deployment's version (the stack sets SERVICE_VERSION, as GET /health reports it), not the generated
// file's placeholder: a client reading the document sees which API it describes.
it("GET /openapi.json serves the committed document with the deployment's SERVICE_VERSION as info.version", async () => {
  process.env.SERVICE_VERSION = "7.3.1-test";
  vi.resetModules();
  const { handler } = await import("../../functions/openapi.ts");
  const res = await call(handler, "openapi", httpEvent("GET", "/openapi.json"));
  expect(res.statusCode).toBe(200);
  const committed = JSON.parse(readFileSync(new URL("../../docs/openapi.json", import.meta.url), "utf8"));
  expect(committed.info.version).not.toBe("7.3.1-test");
  expect(res.json).toEqual({ ...committed, info: { ...committed.info, version: "7.3.1-test" } });
});
