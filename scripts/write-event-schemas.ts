import { mkdirSync, writeFileSync } from "node:fs";
import { eventJsonSchemas } from "../layers/chat/events/event-schemas.ts";

// `npm run docs`: one JSON Schema per event type on chat-messages, in docs/events/.
const dir = new URL("../docs/events/", import.meta.url);
mkdirSync(dir, { recursive: true });
for (const [type, schema] of Object.entries(eventJsonSchemas())) {
  writeFileSync(new URL(`${type}.json`, dir), `${JSON.stringify(schema, null, 2)}\n`);
}
console.log("wrote docs/events/*.json");
