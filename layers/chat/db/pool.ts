import pg from "pg";
import { type Config, config } from "../config.ts";
import { sessionSettings } from "../db-session-settings.ts";
import { connectionConfig } from "./database-url.ts";
import { boundCheckoutsByDeadline, DeadlineBoundClient } from "./deadline-bounds.ts";
import { keepConnectionsOnStatementErrors } from "./pooled-client.ts";
import { poolTypes } from "./timestamps.ts";

let pool: pg.Pool | undefined;
let creating: Promise<pg.Pool> | undefined;

/**
 * The client-side bound on one query: the server ends a statement at statement_timeout, this a second later ends
 * a query on a connection that went silent (a half-open socket after a network fault), and the pool then drops it.
 */
export const queryTimeoutMs = (cfg: Pick<Config, "DB_STATEMENT_TIMEOUT_MS">) =>
  cfg.DB_STATEMENT_TIMEOUT_MS + 1000;

/** The pool settings every process uses (tests build theirs with this too). */
export function buildPool(connection: string | pg.ClientConfig, cfg: Config): pg.Pool {
  const p = new pg.Pool({
    ...(typeof connection === "string" ? { connectionString: connection } : connection),
    max: cfg.DB_POOL_MAX,
    connectionTimeoutMillis: cfg.DB_CONNECT_TIMEOUT_MS,
    // Sent at connect, unless RDS Proxy is in between: it refuses startup parameters, and its init query sets
    // these on its server connections instead (infra).
    ...(cfg.DATABASE_PROXY ? {} : { ...sessionSettings(cfg), application_name: "chat-backend" }),
    query_timeout: queryTimeoutMs(cfg),
    keepAlive: true,
    idleTimeoutMillis: 60_000,
    ssl: cfg.DATABASE_SSL ? { rejectUnauthorized: true } : undefined,
    types: poolTypes,
    // a request's statements and checkouts end by its deadline too (request-deadline.ts)
    Client: DeadlineBoundClient,
  });
  boundCheckoutsByDeadline(p, cfg.DB_CONNECT_TIMEOUT_MS);
  // An idle client that loses its server (restart, failover) must not crash the process; the pool replaces it.
  p.on("error", () => {});
  keepConnectionsOnStatementErrors(p);
  return p;
}

/** One pool per process, created on first use and reused across invocations. */
export function getPool(): Promise<pg.Pool> {
  if (pool) return Promise.resolve(pool);
  creating ??= (async () => {
    const cfg = config();
    pool = buildPool(await connectionConfig(cfg), cfg);
    return pool;
  })().finally(() => {
    creating = undefined;
  });
  return creating;
}

export async function closePool(): Promise<void> {
  const p = pool;
  pool = undefined;
  await p?.end();
}
