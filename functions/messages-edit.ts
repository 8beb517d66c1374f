import { httpHandler } from "./http/http-handler.ts";
import { underIfMatch, versionsFromIfMatch } from "./http/if-match.ts";
import { editMessageBody } from "./http/schemas.ts";

/** PUT /messages/edit: a new version of a user message; `regenerate` also replaces the bot's reply. */
export const handler = httpHandler(
  { name: "messages-edit", body: editMessageBody, sessionRead: "head" },
  async (req) => {
    // A malformed If-Match is bad input, refused with the body's, before anything runs.
    const ifMatch = versionsFromIfMatch(req.headers["if-match"]);
    const auth = await req.authorize(req.body.session_id);
    // Preconditions after authentication (RFC 9110 §13.2.1), and once the service found the message editable:
    // If-Match and an expected_version it does not name leave no version that could match, which the service
    // answers version_conflict after message_not_found and message_not_editable (so does a weak-only If-Match,
    // which underIfMatch words itself).
    const expected = req.body.expected_version;
    const disagree = ifMatch !== undefined && expected !== undefined && !ifMatch.includes(expected);
    const reason = disagree ? "If-Match and expected_version disagree" : undefined;
    return underIfMatch(
      ifMatch,
      async () => {
        const result = await req.chat.editMessage(auth, {
          ...req.body,
          expected_version: disagree ? [] : (expected ?? ifMatch),
        });
        return { status: 200, body: result, headers: { etag: `"${result.message.version}"` } };
      },
      reason,
    );
  },
);
