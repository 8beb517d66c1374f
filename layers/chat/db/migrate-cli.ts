import { config } from "../config.ts";
import { databaseUrl } from "./database-url.ts";
import { migrate } from "./migrate.ts";

// `npm run migrate`: applies pending migrations to DATABASE_URL (or the Secrets Manager secret).
const applied = await migrate(await databaseUrl(config()));
console.log(applied.length ? `applied: ${applied.join(", ")}` : "database is up to date");
