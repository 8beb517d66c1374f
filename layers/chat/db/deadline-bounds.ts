import pg from "pg";
import { DeadlineExceeded, timeLeftMs } from "../request-deadline.ts";

type Query = (this: pg.Client, ...args: unknown[]) => unknown;
/**
 * pg's own query, looked up at each call, not kept from when this module loaded: what instruments pg by patching
 * `Client.prototype.query` later (tracing, a test counting statements) still sees every statement.
 */
const pgQuery = (client: pg.Client, args: unknown[]) =>
  (pg.Client.prototype.query as unknown as Query).apply(client, args);

/**
 * pg's Client, whose statements end by the request's deadline (request-deadline.ts) as well as at the pool's
 * query_timeout: each gets pg's per-query `query_timeout` cut to the time left, and one with no time left is refused
 * unsent (DeadlineExceeded). A bound that ends a sent statement is pg's "Query read timeout", an unanswered statement
 * that may have committed (isUnanswered), as before. Outside a request (scheduled jobs, the consumer) nothing changes.
 */
export class DeadlineBoundClient extends pg.Client {}

(DeadlineBoundClient.prototype as unknown as { query: Query }).query = function boundedQuery(
  this: pg.Client,
  ...args
) {
  const left = timeLeftMs();
  if (left === undefined) return pgQuery(this, args);
  const [config, values, callback] = args;
  if (left <= 0) {
    const err = new DeadlineExceeded("a statement was sent");
    const done = typeof values === "function" ? values : callback;
    if (typeof done === "function") return void process.nextTick(done, err);
    return Promise.reject(err);
  }
  // the statement's own bound (a health probe's), else the pool's, if that ends first
  const bound =
    (config as { query_timeout?: number } | null)?.query_timeout ||
    (this as unknown as { connectionParameters: { query_timeout?: number } }).connectionParameters
      .query_timeout;
  if (bound && bound <= left) return pgQuery(this, args);
  const query_timeout = Math.ceil(left);
  if (typeof config === "string") return pgQuery(this, [{ text: config, query_timeout }, values, callback]);
  if (typeof config === "object" && config !== null && !("submit" in config))
    return pgQuery(this, [{ ...config, query_timeout }, values, callback]);
  return pgQuery(this, args); // a submittable (a cursor): not used on a request's path
};

/**
 * Makes the pool's checkout wait (pg-pool's connectionTimeoutMillis, read as each connect() starts: for a free
 * connection, for a new one's connect) end by the request's deadline too. The existing timer, shortened: no new one.
 */
export function boundCheckoutsByDeadline(pool: pg.Pool, connectTimeoutMs: number): void {
  Object.defineProperty((pool as unknown as { options: object }).options, "connectionTimeoutMillis", {
    enumerable: true,
    get: () => {
      const left = timeLeftMs();
      // never 0, which pg-pool reads as "wait for ever"
      return left === undefined ? connectTimeoutMs : Math.max(1, Math.min(connectTimeoutMs, Math.ceil(left)));
    },
  });
}

/** Refuses a checkout the request has no time left to wait for (withClient). */
export function assertTimeForCheckout(): void {
  const left = timeLeftMs();
  if (left !== undefined && left <= 0) throw new DeadlineExceeded("a database connection was free");
}
