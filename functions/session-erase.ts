import { httpHandler } from "./http/http-handler.ts";
import { sessionPathParams } from "./http/schemas.ts";

/** DELETE /sessions/{session_id}: erases the session and everything in it, for good. */
export const handler = httpHandler(
  { name: "session-erase", path: sessionPathParams, sessionRead: "session" },
  async (req) => {
    const auth = await req.authorize(req.path.session_id);
    await req.chat.eraseSession(auth);
    return { status: 204 };
  },
);
