import { ChatError } from "./errors.ts";

/**
 * Why a string cannot be stored as text or jsonb in Postgres, or null when it can: no NUL characters and
 * no lone surrogates (valid UTF-16, so valid UTF-8 once encoded).
 */
export function textIssue(s: string): string | null {
  if (s.includes("\u0000")) return "must not contain NUL characters";
  if (!s.isWellFormed()) return "must be valid Unicode (lone surrogate)";
  return null;
}

/**
 * Text from elsewhere (a model's reply) made storable rather than refused: NUL characters dropped, lone surrogates
 * replaced by U+FFFD. A user's own text is refused instead (textIssue), so what it sent is what is stored.
 */
export function storableText(s: string): string {
  return textIssue(s) === null ? s : s.replaceAll("\u0000", "").toWellFormed();
}

/**
 * A character that shows: neither white space (what String.trim() drops) nor a default-ignorable code point, which
 * renders as nothing (zero-width space U+200B, word joiner U+2060, Hangul filler U+3164, BOM U+FEFF, …).
 */
const VISIBLE = /[^\s\p{Default_Ignorable_Code_Point}]/u;

/** Text a reader would see as empty: nothing but white space and invisible characters. */
export const isBlank = (s: string): boolean => !VISIBLE.test(s);

/**
 * Message content: 1..max characters (code points, so an emoji counts once), not blank (isBlank), storable.
 * Stored exactly as sent.
 */
export function assertValidContent(content: unknown, max: number, path = "content"): string {
  if (typeof content !== "string") throw invalid(path, "must be a string");
  const issue = textIssue(content);
  if (issue) throw invalid(path, issue);
  if (isBlank(content))
    throw invalid(path, "must not be empty (white space and invisible characters do not count)");
  if (countCodePoints(content, max) > max) throw invalid(path, `must be at most ${max} characters`);
  return content;
}

/** Code points in `s`, counting no further than one past `upTo` (a long string is not walked to its end). */
function countCodePoints(s: string, upTo = Number.POSITIVE_INFINITY): number {
  let chars = 0;
  for (const _ of s) if (++chars > upTo) break;
  return chars;
}

/** An optional caller-chosen user id: 1–256 storable characters. */
export function assertValidUserId(userId: string | null | undefined): string | null {
  if (userId === undefined || userId === null) return null;
  const issue = textIssue(userId);
  if (issue) throw invalid("user_id", issue);
  // Characters are code points, as JSON Schema's maxLength (and the OpenAPI document) count them.
  const chars = countCodePoints(userId, 256);
  if (chars === 0 || chars > 256) throw invalid("user_id", "must be 1–256 characters");
  return userId;
}

export function invalid(path: string, message: string): ChatError {
  return new ChatError("validation_failed", `${path} ${message}`, { errors: [{ path, message }] });
}
