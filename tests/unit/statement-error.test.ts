import pg from "pg";
import { describe, expect, it } from "vitest";
import { isStatementError, isUnanswered, noteIfUnanswered } from "../../layers/chat/db/pooled-client.ts";
import { withTransaction } from "../../layers/chat/db/transaction.ts";

/** A server error as pg reports it. */
function serverError(code: string, severity: string): pg.DatabaseError {
  const err = new pg.DatabaseError("server error", 0, "error");
  err.code = code;
  err.severity = severity;
  return err;
}

/** Which errors leave the connection to the pool (a refused statement) and which close it. */
describe("isStatementError", () => {
  it("a statement the server refused: the connection is fine", () => {
    expect(isStatementError(serverError("23505", "ERROR"))).toBe(true); // unique violation
    expect(isStatementError(serverError("57014", "ERROR"))).toBe(true); // statement timeout
    expect(isStatementError(serverError("55P03", "ERROR"))).toBe(true); // lock timeout
  });

  it("a FATAL error, a connection exception, a shutdown or a localized severity is not", () => {
    expect(isStatementError(serverError("25P03", "FATAL"))).toBe(false); // idle-in-transaction timeout
    expect(isStatementError(serverError("08006", "ERROR"))).toBe(false);
    expect(isStatementError(serverError("57P01", "ERROR"))).toBe(false);
    expect(isStatementError(serverError("23505", "FEHLER"))).toBe(false);
    expect(isStatementError(new Error("Connection terminated unexpectedly"))).toBe(false);
  });
});

/** A client whose statements answer as `answer` says (a pool of one, for withTransaction). */
function poolAnswering(answer: (sql: string) => Promise<unknown>): pg.Pool {
  const client = {
    query: (sql: string) => answer(sql),
    on: () => client,
    removeListener: () => client,
    release: () => {},
  };
  return { connect: async () => client } as unknown as pg.Pool;
}

/** Which failures may have committed a change (a 503 that says so) and which surely did not. */
describe("isUnanswered", () => {
  it("notes a statement sent and never answered, not one the server answered nor one never sent", () => {
    const lost = new Error("Query read timeout");
    noteIfUnanswered(lost);
    expect(isUnanswered(lost)).toBe(true);
    // the server answered (even FATAL, e.g. a shutdown): it ran no part of the statement to completion
    const answered = serverError("57P01", "FATAL");
    noteIfUnanswered(answered);
    expect(isUnanswered(answered)).toBe(false);
    // pg refused to send it on a closed client
    const unsent = new Error("Client was closed and is not queryable");
    noteIfUnanswered(unsent);
    expect(isUnanswered(unsent)).toBe(false);
    expect(isUnanswered(new Error("Query read timeout"))).toBe(false); // only the error noted
  });

  it("in a transaction, only a COMMIT that got no answer may have committed", async () => {
    const fails = (at: string) =>
      withTransaction(
        poolAnswering(async (sql) => {
          if (sql === at) throw new Error("Connection terminated unexpectedly");
          return { rows: [] };
        }),
        (client) => client.query("UPDATE sessions SET last_seq = last_seq + 1"),
      ).then(
        () => expect.unreachable(),
        (err: unknown) => err,
      );
    expect(isUnanswered(await fails("COMMIT"))).toBe(true);
    // the work's own statement lost: nothing was committed, the transaction rolls back with the connection
    expect(isUnanswered(await fails("UPDATE sessions SET last_seq = last_seq + 1"))).toBe(false);
  });
});
