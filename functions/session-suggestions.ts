import { httpHandler } from "./http/http-handler.ts";
import { sessionPathParams } from "./http/schemas.ts";

/** GET /sessions/{session_id}/suggestions: the suggested next replies. */
export const handler = httpHandler(
  { name: "session-suggestions", path: sessionPathParams, sessionRead: "session" },
  async (req) => {
    const auth = await req.authorize(req.path.session_id);
    return { status: 200, body: { suggestions: req.chat.suggestions(auth) } };
  },
);
