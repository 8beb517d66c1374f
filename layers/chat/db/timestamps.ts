import pg from "pg";

const TIMESTAMPTZ_OID = 1184;
// "2026-11-26 10:47:53.123456+00": what Postgres sends for a timestamptz when the session's TimeZone is UTC.
const UTC_TEXT = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?\+00$/;
const driverParser = pg.types.getTypeParser(TIMESTAMPTZ_OID, "text") as (text: string) => unknown;

/**
 * A timestamptz as the API writes it (`Date#toISOString()`: milliseconds, `Z`), cut straight from Postgres'
 * text instead of building a Date per value and formatting it again (the largest single cost of mapping
 * history rows). Any other shape (another TimeZone, BC, ±infinity) goes through the driver's parser.
 */
export function timestamptzToIso(text: string): string {
  const m = UTC_TEXT.exec(text);
  if (m) return `${m[1]}T${m[2]}.${(m[3] ?? "").padEnd(3, "0").slice(0, 3)}Z`;
  const parsed = driverParser(text);
  return parsed instanceof Date && !Number.isNaN(parsed.getTime()) ? parsed.toISOString() : text;
}

/** The pool's type parsers: the driver's, except timestamptz. */
export const poolTypes = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === TIMESTAMPTZ_OID && format !== "binary"
      ? timestamptzToIso
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};
