import { config } from "../config.ts";
import { databaseUrl } from "./database-url.ts";
import { migrate } from "./migrate.ts";

// `npm run migrate`: applies pending migrations to DATABASE_URL (or the Secrets Manager secret). A missing setting
// or an unreachable database is one line on stderr and exit code 1, not a stack trace.
try {
  const applied = await migrate(await databaseUrl(config()));
  console.log(applied.length ? `applied: ${applied.join(", ")}` : "database is up to date");
} catch (err) {
  console.error(`migrate: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
