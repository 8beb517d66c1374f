/**
 * Failures that mean "a backend is away", answered 503 with Retry-After instead of 500:
 * Postgres refusing or dropping connections, a pool that cannot connect in time, a server shutting down,
 * a password rotated moments ago (28P01: the cached secret catches up within minutes), a connection gone silent
 * (pg's "Query read timeout": the pool's bound a second past the statement timeout, which the server never sent),
 * a statement the server cancelled at statement_timeout (57014: a Postgres too slow or too loaded to finish it in
 * time), and one that waited past lock_timeout for a lock (55P03 outside a change, which answers session_busy: a
 * read queued behind a migration's table lock). Either rolled back, so a retry cannot apply a change twice.
 */
const UNAVAILABLE_PG_CODES = new Set([
  "28P01",
  "55P03",
  "57014",
  "57P01",
  "57P02",
  "57P03",
  "53300",
  "53400",
  "08000",
  "08001",
  "08003",
  "08004",
  "08006",
]);
const UNAVAILABLE_NET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
]);

/**
 * What the log's `reason` says for each message that means "a backend is away": pg's errors for these carry no
 * code, and their name is "Error", so without it the on-call's only line for a 503 said `{"name":"Error"}`, whatever
 * went wrong. A fixed word, never the message. The more specific first: pg-pool's connect timeout also says
 * "Connection terminated".
 */
const UNAVAILABLE_MESSAGES: readonly (readonly [RegExp, string])[] = [
  [/Connection terminated due to connection timeout/i, "connect_timeout"],
  [/Connection terminated/i, "connection_terminated"],
  [/timeout exceeded when trying to connect/i, "pool_connect_timeout"],
  [/Query read timeout/i, "query_read_timeout"],
  [/Client has encountered a connection error/i, "connection_broken"],
  [/the database system is (starting up|shutting down)/i, "database_restarting"],
  [/DATABASE_URL or DATABASE_SECRET_ARN/i, "database_not_configured"],
  // Secrets Manager not answering within the bound: the connection waits on it, so Postgres is as good as away.
  [/the database secret was not read within/i, "database_secret_timeout"],
  // a step the request had no time left for (request-deadline.ts): refused unsent, so nothing of it was made
  [/the request's time ran out before/i, "request_deadline"],
];

/** Why `err` means a backend is away (its SQLSTATE or errno, or a word of UNAVAILABLE_MESSAGES), else undefined. */
export function unavailableReason(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: string }).code;
  if (code && (UNAVAILABLE_PG_CODES.has(code) || UNAVAILABLE_NET_CODES.has(code))) return code;
  if (err instanceof AggregateError) {
    for (const inner of err.errors) {
      const reason = unavailableReason(inner);
      if (reason) return reason;
    }
    return undefined;
  }
  return UNAVAILABLE_MESSAGES.find(([pattern]) => pattern.test(err.message))?.[1];
}

export function isBackendUnavailable(err: unknown): boolean {
  return unavailableReason(err) !== undefined;
}
