import { httpHandler } from "./http/http-handler.ts";
import { idempotencyRequest, replayHeaders, withoutReplayFlag } from "./http/idempotency-header.ts";
import { postMessageBody } from "./http/schemas.ts";

/** POST /messages/post: stores the user's message and the bot's reply together. */
export const handler = httpHandler(
  // a post needs only the history's newest messages (the responder's context): read its end, not all of it
  { name: "messages-post", body: postMessageBody, sessionRead: "tail" },
  async (req) => {
    const auth = await req.authorize(req.body.session_id);
    const idem = idempotencyRequest(req.headers, `messages-post:${req.body.session_id}`, req.body);
    const turn = await req.chat.postMessage(auth, req.body.content, idem);
    return { status: 201, body: withoutReplayFlag(turn), headers: replayHeaders(turn) };
  },
);
