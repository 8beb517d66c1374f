import { httpHandler } from "./http/http-handler.ts";
import { deleteMessageBody } from "./http/schemas.ts";

/** DELETE /messages/delete: tombstones a message; ids come as a JSON body or as query parameters. */
export const handler = httpHandler(
  { name: "messages-delete", body: deleteMessageBody, bodyFromQuery: true, sessionRead: "head" },
  async (req) => {
    const auth = await req.authorize(req.body.session_id);
    return { status: 200, body: await req.chat.deleteMessage(auth, req.body.message_id) };
  },
);
