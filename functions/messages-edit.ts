import { ChatError } from "#chat/chat/errors.ts";
import { httpHandler } from "./http/http-handler.ts";
import { HttpProblem } from "./http/problem.ts";
import { editMessageBody } from "./http/schemas.ts";

/** PUT /messages/edit: a new version of a user message; `regenerate` also replaces the bot's reply. */
export const handler = httpHandler(
  { name: "messages-edit", body: editMessageBody, sessionRead: "whole" },
  async (req) => {
    const ifMatch = versionFromIfMatch(req.headers["if-match"]);
    if (
      ifMatch !== undefined &&
      req.body.expected_version !== undefined &&
      ifMatch !== req.body.expected_version
    ) {
      throw new HttpProblem("precondition_failed", "If-Match and expected_version disagree");
    }
    const auth = await req.chat.authorize(req.body.session_id, req.token, req.prefetched);
    try {
      const result = await req.chat.editMessage(auth, {
        ...req.body,
        expected_version: ifMatch ?? req.body.expected_version,
      });
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

/** `If-Match: "3"` (or W/"3", or 3) → 3. */
function versionFromIfMatch(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const match = header.trim().match(/^(?:W\/)?"?(\d{1,9})"?$/);
  if (!match) throw new HttpProblem("precondition_failed", 'If-Match must be a message version such as "3"');
  return Number(match[1]);
}
