/**
 * Failures that mean "a backend is away", answered 503 with Retry-After instead of 500:
 * Postgres refusing or dropping connections, a pool that cannot connect in time, a server shutting down,
 * a password rotated moments ago (28P01: the cached secret catches up within minutes), a connection gone silent
 * (pg's "Query read timeout": the pool's bound a second past the statement timeout, which the server never sent).
 */
const UNAVAILABLE_PG_CODES = new Set([
  "28P01",
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

export function isBackendUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: string }).code;
  if (code && (UNAVAILABLE_PG_CODES.has(code) || UNAVAILABLE_NET_CODES.has(code))) return true;
  if (err instanceof AggregateError) return err.errors.some(isBackendUnavailable);
  return /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|the database system is (starting up|shutting down)|DATABASE_URL or DATABASE_SECRET_ARN/i.test(
    err.message,
  );
}
