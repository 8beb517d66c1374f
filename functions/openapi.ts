import document from "../docs/openapi.json" with { type: "json" };
import { httpHandler } from "./http/http-handler.ts";

/**
 * The pre-generated docs/openapi.json (`npm run docs`; tests/e2e/openapi-contract.test.ts fails when it is not
 * what the zod schemas generate now). Inlined by esbuild, so this function loads neither zod nor the chat runtime.
 */
const served = {
  ...document,
  info: { ...document.info, version: process.env.SERVICE_VERSION ?? document.info.version },
};

/** GET /openapi.json: the OpenAPI 3.1 document. */
export const handler = httpHandler({ name: "openapi", chat: false }, async () => ({
  status: 200,
  body: served,
  headers: { "cache-control": "public, max-age=300" },
}));
