import { httpHandler } from "./http/http-handler.ts";
import { historyQuery, sessionPathParams } from "./http/schemas.ts";

/** GET /sessions/{session_id}/messages?after_seq=&limit=: a page of history, from the cache when it can. */
export const handler = httpHandler(
  {
    name: "session-messages",
    path: sessionPathParams,
    query: historyQuery,
    // the first page is the history's start; a later one (a client polling for new messages) usually its end
    sessionRead: (event) => (Number(event.queryStringParameters?.after_seq) > 0 ? "tail" : "head"),
  },
  async (req) => {
    const auth = await req.authorize(req.path.session_id);
    const page = await req.chat.historyJson(auth, req.query.after_seq, req.query.limit);
    return { status: 200, json: page.json, headers: { "x-cache": page.fromCache ? "hit" : "miss" } };
  },
);
