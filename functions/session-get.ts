import { httpHandler } from "./http/http-handler.ts";
import { sessionPathParams } from "./http/schemas.ts";

/** GET /sessions/{session_id}: counts, last seq, times. */
export const handler = httpHandler(
  { name: "session-get", path: sessionPathParams, sessionRead: "session" },
  async (req) => {
    const auth = await req.authorize(req.path.session_id);
    return { status: 200, body: req.chat.getSession(auth) };
  },
);
