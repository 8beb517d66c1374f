import pg from "pg";
import { DeadlineExceeded } from "../request-deadline.ts";
import { assertTimeForCheckout } from "./deadline-bounds.ts";

/** The connection's state as `work` leaves it: lost (pg said so) or broken (the caller says so). */
export interface ClientCheckout {
  /** Set once pg reported the connection lost: the pool must not hand the client out again. */
  readonly lost: Error | undefined;
  /** Marks the client unusable (e.g. a ROLLBACK failed): it is closed on release. */
  markBroken(err: Error): void;
}

/**
 * Runs `work` on one pooled client and releases it. pg emits `error` on a client whose connection drops,
 * even while a query is running (which also rejects); a checked-out client has no listener, so that event
 * was an uncaught exception that ended the process: a Lambda sandbox with its in-flight request, or the local
 * runner with every function. The listener here keeps the error, and a lost client is closed on release.
 */
export async function withClient<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient, checkout: ClientCheckout) => Promise<T>,
): Promise<T> {
  assertTimeForCheckout();
  const client = await pool.connect();
  let lost: Error | undefined;
  let broken: Error | undefined;
  const onError = (err: Error) => {
    lost ??= err;
  };
  client.on("error", onError);
  try {
    return await work(client, {
      get lost() {
        return lost;
      },
      markBroken: (err) => {
        broken ??= err;
      },
    });
  } finally {
    client.removeListener("error", onError);
    client.release(lost ?? broken);
  }
}

/**
 * An error the server reported about a statement (severity ERROR, not FATAL; no connection or shutdown class):
 * the statement failed and the connection is fine. Anything else (a localized severity included) counts as not.
 */
export const isStatementError = (err: unknown): boolean =>
  err instanceof pg.DatabaseError && err.severity === "ERROR" && !/^(08|57P)/.test(err.code ?? "08");

const unanswered = new WeakSet<object>();

/**
 * Whether `err` ended a statement that was sent and never answered (a connection that went silent or dropped
 * mid-statement, pg's query bound): the server may have run it, and a write in it committed. A statement the server
 * answered with an error did not; nor did one that failed before it was sent (no connection, a broken client).
 */
export const isUnanswered = (err: unknown): boolean =>
  typeof err === "object" && err !== null && unanswered.has(err);

/** Notes a failed statement's error as unanswered (isUnanswered) unless the server answered it or it was never sent. */
export function noteIfUnanswered(err: unknown): void {
  if (
    err instanceof Error &&
    !(err instanceof pg.DatabaseError) &&
    !(err instanceof DeadlineExceeded) &&
    !/not queryable/.test(err.message)
  )
    unanswered.add(err);
}

/**
 * Whether `err` is pg's own bound on a statement the server had not answered (its "Query read timeout"): the
 * connection stays busy with that statement, and any query sent after it waits for its answer.
 */
export const isStuckBehindUnanswered = (err: unknown): boolean =>
  err instanceof Error && err.message === "Query read timeout";

/**
 * Undoes noteIfUnanswered once a check on another connection found that the statement did not commit: a failure
 * that changed nothing, as one before it was sent (a plain 503, "retry shortly").
 */
export function noteNotCommitted(err: unknown): void {
  if (typeof err === "object" && err !== null) unanswered.delete(err);
}

type PoolQuery = (this: pg.Pool, ...args: unknown[]) => unknown;

/**
 * `pool.query(…)` as pg-pool does it, except that a statement the server refused (a unique violation, a
 * statement timeout) gives the connection back to the pool: pg-pool closes it after any error, and every
 * replayed Idempotency-Key (whose insert fails on the key, by design) then cost the next request a new
 * connection (TCP, TLS and authentication; through RDS Proxy, a new TLS session). Lost connections, client-side
 * timeouts and FATAL errors still close it. Callback and submittable forms go to pg-pool unchanged.
 */
export function keepConnectionsOnStatementErrors(pool: pg.Pool): void {
  const poolQuery = pool.query as unknown as PoolQuery;
  const query: PoolQuery = function query(this: pg.Pool, ...args) {
    const [config, values] = args;
    const promiseForm =
      args.length <= 2 &&
      typeof values !== "function" &&
      (typeof config === "string" ||
        (typeof config === "object" &&
          config !== null &&
          typeof (config as { submit?: unknown }).submit !== "function"));
    if (!promiseForm) return poolQuery.apply(this, args);
    return withClient(this, async (client, checkout) => {
      try {
        return await client.query(config as string | pg.QueryConfig, values as unknown[] | undefined);
      } catch (err) {
        // a statement refused unsent (no time left) leaves its connection as it was
        if (!isStatementError(err) && !(err instanceof DeadlineExceeded)) {
          checkout.markBroken(err as Error);
          noteIfUnanswered(err);
        }
        throw err;
      }
    });
  };
  (pool as unknown as { query: PoolQuery }).query = query;
}
