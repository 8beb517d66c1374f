import { ChatError } from "#chat/chat/errors.ts";
import { httpHandler } from "./http/http-handler.ts";
import { HttpProblem } from "./http/problem.ts";
import { editMessageBody } from "./http/schemas.ts";

/** PUT /messages/edit: a new version of a user message; `regenerate` also replaces the bot's reply. */
export const handler = httpHandler(
  { name: "messages-edit", body: editMessageBody, sessionRead: "head" },
  async (req) => {
    const ifMatch = versionsFromIfMatch(req.headers["if-match"]);
    const expected = req.body.expected_version;
    if (ifMatch && expected !== undefined && !ifMatch.includes(expected)) {
      throw new HttpProblem("precondition_failed", "If-Match and expected_version disagree");
    }
    const auth = await req.authorize(req.body.session_id);
    // Only weak tags: If-Match compares strongly, so none can match (RFC 9110 §13.1.1).
    if (ifMatch?.length === 0)
      throw new HttpProblem("precondition_failed", "a weak entity tag never matches If-Match");
    try {
      const result = await req.chat.editMessage(auth, { ...req.body, expected_version: expected ?? ifMatch });
      return { status: 200, body: result, headers: { etag: `"${result.message.version}"` } };
    } catch (err) {
      // A failed If-Match is a failed HTTP precondition; a stale expected_version in the body is a conflict.
      if (ifMatch !== undefined && err instanceof ChatError && err.code === "version_conflict") {
        throw new HttpProblem("precondition_failed", err.message);
      }
      throw err;
    }
  },
);

/**
 * If-Match (RFC 9110 §13.1.1) over a message's version, its entity tag: the versions its strong tags name (`"3"`;
 * a bare 3 is taken too), none for weak tags (`W/"3"` never matches a strong comparison), undefined for no header
 * or `*` (any current version: the message must only exist). Anything else is a 400.
 */
function versionsFromIfMatch(header: string | undefined): number[] | undefined {
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
