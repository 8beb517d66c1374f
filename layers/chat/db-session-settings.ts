// Pure (no driver): the CDK app imports it for RDS Proxy's init query.
import type { Config } from "./config.ts";

/**
 * The server settings every database session of the product needs: a bound on each statement, and the
 * wait for another writer's session row lock after which a change answers 409 session_busy.
 */
export function sessionSettings(cfg: Pick<Config, "DB_STATEMENT_TIMEOUT_MS" | "SESSION_LOCK_TIMEOUT_MS">) {
  return { statement_timeout: cfg.DB_STATEMENT_TIMEOUT_MS, lock_timeout: cfg.SESSION_LOCK_TIMEOUT_MS };
}

/**
 * The same settings as SQL, for RDS Proxy's init query: the proxy refuses them as startup parameters
 * (`0A000 … doesn't support the option statement_timeout`), so behind it (DATABASE_PROXY) the client sends
 * none and the proxy sets them on every server connection it opens.
 */
export function sessionSettingsSql(cfg: Parameters<typeof sessionSettings>[0]): string {
  return Object.entries(sessionSettings(cfg))
    .map(([name, ms]) => `SET ${name} = ${Math.trunc(ms)}`)
    .join("; ");
}
