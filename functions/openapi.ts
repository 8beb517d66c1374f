import { httpHandler } from "./http/http-handler.ts";
import { buildOpenApiDocument } from "./http/openapi-document.ts";

const document = buildOpenApiDocument(process.env.SERVICE_VERSION);

/** GET /openapi.json: the OpenAPI 3.1 document (built once per process). */
export const handler = httpHandler({ name: "openapi", chat: false }, async () => ({
  status: 200,
  body: document,
  headers: { "cache-control": "public, max-age=300" },
}));
