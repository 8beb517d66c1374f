import { httpHandler } from "./http/http-handler.ts";
import { underIfMatch, versionsFromIfMatch } from "./http/if-match.ts";
import { deleteMessageBody } from "./http/schemas.ts";

/**
 * DELETE /messages/delete: tombstones a message; ids come as a JSON body or as query parameters. If-Match (the
 * message's version, as an edit's ETag) makes it conditional, as for an edit.
 */
export const handler = httpHandler(
  { name: "messages-delete", body: deleteMessageBody, bodyFromQuery: true, sessionRead: "head" },
  async (req) => {
    const ifMatch = versionsFromIfMatch(req.headers["if-match"]);
    const auth = await req.authorize(req.body.session_id);
    return underIfMatch(ifMatch, async () => ({
      status: 200,
      body: await req.chat.deleteMessage(auth, req.body.message_id, ifMatch),
    }));
  },
);
