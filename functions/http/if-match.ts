import { ChatError } from "#chat/chat/errors.ts";
import { HttpProblem } from "./problem.ts";

/**
 * If-Match (RFC 9110 §13.1.1) over a message's version, its entity tag: the versions its strong tags name (`"3"`;
 * a bare 3 is taken too), none for weak tags (`W/"3"` never matches a strong comparison), undefined for no header
 * or `*` (any current version: the message must only exist). Anything else is a 400.
 */
export function versionsFromIfMatch(header: string | undefined): number[] | undefined {
  if (header === undefined || header.trim() === "*") return undefined;
  const versions: number[] = [];
  // a list may hold empty elements (RFC 9110 §5.6.1.2); one with none at all is malformed
  const tags = header
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
  if (tags.length === 0) tags.push(header);
  for (const tag of tags) {
    const match = tag.match(/^(W\/)?"(\d{1,9})"$|^(\d{1,9})$/);
    if (!match) {
      const message = 'must be * or entity tags of message versions, such as "3"';
      throw new ChatError("validation_failed", `If-Match ${message}`, {
        errors: [{ path: "headers.if-match", message }],
      });
    }
    if (!match[1]) versions.push(Number(match[2] ?? match[3]));
  }
  return versions;
}

/**
 * Runs a change of a message under If-Match (`ifMatch`, from versionsFromIfMatch), once the request is
 * authenticated: a precondition is evaluated only after that (RFC 9110 §13.2.1), so a wrong token is a 401, not a
 * 412. `change` hands the versions to the service, which checks them once it found the message (message_not_found
 * first); with only weak tags they are none, which nothing matches. The service's version_conflict, the versions
 * having come from If-Match, is a failed precondition (412), the change not made. `reason`: the 412's detail when
 * the caller knows better than the service why nothing could match.
 */
export async function underIfMatch<T>(
  ifMatch: number[] | undefined,
  change: () => Promise<T>,
  reason?: string,
): Promise<T> {
  try {
    return await change();
  } catch (err) {
    if (ifMatch !== undefined && err instanceof ChatError && err.code === "version_conflict")
      throw new HttpProblem(
        "precondition_failed",
        reason ?? (ifMatch.length === 0 ? WEAK_ONLY : err.message),
      );
    throw err;
  }
}

/** Only weak tags: If-Match compares strongly, so none can match (RFC 9110 §13.1.1). */
const WEAK_ONLY = "a weak entity tag never matches If-Match";
