import { writeFileSync } from "node:fs";
import { buildOpenApiDocument } from "../functions/http/openapi-document.ts";

// `npm run docs`: regenerates docs/openapi.json from the zod schemas and the manifest (functions/openapi.ts
// serves this file; tests/e2e/openapi-contract.test.ts fails when it is out of date).
writeFileSync(
  new URL("../docs/openapi.json", import.meta.url),
  `${JSON.stringify(buildOpenApiDocument(), null, 2)}\n`,
);
console.log("wrote docs/openapi.json");
