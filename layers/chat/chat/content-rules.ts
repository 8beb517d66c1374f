import { ChatError } from "./errors.ts";

/**
 * Message content: 1..max characters (code points, so emoji count once), not only white space, no NUL
 * (Postgres text cannot hold it). Stored exactly as sent.
 */
export function assertValidContent(content: unknown, max: number, path = "content"): string {
  if (typeof content !== "string") throw invalid(path, "must be a string");
  if (content.includes("\u0000")) throw invalid(path, "must not contain NUL characters");
  if (content.trim().length === 0) throw invalid(path, "must not be empty");
  let chars = 0;
  for (const _ of content) {
    chars++;
    if (chars > max) throw invalid(path, `must be at most ${max} characters`);
  }
  if (hasLoneSurrogate(content)) throw invalid(path, "must be valid Unicode (lone surrogate)");
  return content;
}

function hasLoneSurrogate(s: string): boolean {
  return !s.isWellFormed();
}

function invalid(path: string, message: string): ChatError {
  return new ChatError("validation_failed", `${path} ${message}`, { errors: [{ path, message }] });
}
