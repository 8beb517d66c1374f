import pg from "pg";
import { describe, expect, it } from "vitest";
import { isStatementError } from "../../layers/chat/db/pooled-client.ts";

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
