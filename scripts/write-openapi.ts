import { writeFileSync } from "node:fs";
import { buildOpenApiDocument } from "../functions/http/openapi-document.ts";

// `npm run openapi`: regenerates docs/openapi.json from the zod schemas and the manifest.
writeFileSync(
  new URL("../docs/openapi.json", import.meta.url),
  `${JSON.stringify(buildOpenApiDocument(), null, 2)}\n`,
);
console.log("wrote docs/openapi.json");
