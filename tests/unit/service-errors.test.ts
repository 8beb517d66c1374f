import { describe, expect, it, vi } from "vitest";
import { isBackendUnavailable, unavailableReason } from "../../functions/http/service-errors.ts";

vi.mock("../../layers/chat/secrets.ts", () => ({ readJsonSecret: () => new Promise(() => {}) }));

const withCode = (code: string, message = "failed") => Object.assign(new Error(message), { code });

// 503 with Retry-After (a client may retry) or 500 (it should not): which failures mean "a backend is away".
describe("isBackendUnavailable", () => {
  it.each([
    ["a server shutting down (57P01, admin_shutdown)", withCode("57P01")],
    ["too many connections (53300)", withCode("53300")],
    // a warm sandbox's cached secret, one rotation behind for up to its cache's age (docs/deploy.md)
    ["a password refused (28P01, invalid_password)", withCode("28P01", "password authentication failed")],
    ["a refused connection", withCode("ECONNREFUSED")],
    ["a DNS name that does not resolve", withCode("ENOTFOUND")],
    // net.connect to a name with IPv4 and IPv6 addresses, both refused
    [
      "every address refused (AggregateError)",
      new AggregateError([withCode("ECONNREFUSED"), withCode("ECONNREFUSED")]),
    ],
    // a host without IPv6: its address unreachable (not in the list by itself), the IPv4 one refused
    [
      "one address unreachable, one refused",
      new AggregateError([withCode("ENETUNREACH"), withCode("ECONNREFUSED")]),
    ],
    ["a connection pg saw end", new Error("Connection terminated unexpectedly")],
    ["a pool that could not connect in time", new Error("timeout exceeded when trying to connect")],
    // pg's query_timeout: the connection went silent (the server's statement_timeout would have answered 57014)
    ["a connection gone silent", new Error("Query read timeout")],
    // Postgres too slow or loaded to finish a statement within statement_timeout: it cancelled (and rolled back) it
    [
      "a statement cancelled at the statement timeout (57014)",
      withCode("57014", "canceling statement due to statement timeout"),
    ],
    // a read queued behind a table lock (a migration's) past lock_timeout; a change's answers session_busy first
    [
      "a lock not granted within the lock timeout (55P03)",
      withCode("55P03", "canceling statement due to lock timeout"),
    ],
    ["a server starting up", new Error("the database system is starting up")],
    ["no database configured", new Error("set DATABASE_URL or DATABASE_SECRET_ARN")],
  ])("%s: yes", (_, err) => {
    expect(isBackendUnavailable(err)).toBe(true);
  });

  it.each([
    ["a syntax error (42601): a bug, not an outage", withCode("42601", "syntax error at or near")],
    ["a unique violation (23505)", withCode("23505")],
    ["an AggregateError of bugs", new AggregateError([new TypeError("x is undefined")])],
    ["a plain error", new Error("something else")],
    ["something thrown that is no Error", { code: "ECONNREFUSED" }],
  ])("%s: no", (_, err) => {
    expect(isBackendUnavailable(err)).toBe(false);
  });
});

// The 503's log line says which (never the message): pg's errors for these have no code and are named "Error".
describe("unavailableReason", () => {
  it.each([
    ["Connection terminated due to connection timeout", "connect_timeout"],
    ["Connection terminated unexpectedly", "connection_terminated"],
    ["timeout exceeded when trying to connect", "pool_connect_timeout"],
    ["Query read timeout", "query_read_timeout"],
    ["Client has encountered a connection error and is not queryable", "connection_broken"],
    ["the database system is shutting down", "database_restarting"],
    ["DATABASE_URL or DATABASE_SECRET_ARN must be set", "database_not_configured"],
  ])("%s: %s", (message, reason) => {
    expect(unavailableReason(new Error(message))).toBe(reason);
  });

  it("is database_secret_timeout when Secrets Manager does not answer the pool's read of the database secret", async () => {
    const { readJsonSecretBounded, SECRET_READ_TIMEOUT_MS } = await import(
      "../../layers/chat/bounded-secret-read.ts"
    );
    vi.useFakeTimers();
    try {
      const read = readJsonSecretBounded("arn:aws:secretsmanager:eu-west-1:1:secret:db", "database");
      const failed = read.catch((err: unknown) => err);
      await vi.advanceTimersByTimeAsync(SECRET_READ_TIMEOUT_MS);
      const err = await failed;
      expect(unavailableReason(err)).toBe("database_secret_timeout");
      expect(isBackendUnavailable(err)).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it("is the SQLSTATE or errno when there is one, an AggregateError's first, and nothing for other errors", () => {
    expect(unavailableReason(withCode("57P01"))).toBe("57P01");
    expect(unavailableReason(new AggregateError([withCode("ENETUNREACH"), withCode("ECONNREFUSED")]))).toBe(
      "ECONNREFUSED",
    );
    expect(unavailableReason(withCode("23505"))).toBeUndefined();
    expect(unavailableReason(new Error("something else"))).toBeUndefined();
  });
});
