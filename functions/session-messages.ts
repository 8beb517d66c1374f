import { type HttpResult, httpHandler } from "./http/http-handler.ts";
import { noneMatchHits } from "./http/if-none-match.ts";
import { historyQuery, sessionPathParams } from "./http/schemas.ts";

/**
 * GET /sessions/{session_id}/messages?after_seq=&limit=: a page of history, from the cache when it can. Its ETag is
 * the session's generation, which every change (post, edit, delete, regenerate) moves: a poll with If-None-Match
 * gets 304 and no body until something changed, one request instead of reading the session first. Weak: the same
 * page cut from the cache or read from Postgres is equal, not promised byte for byte.
 */
export const handler = httpHandler(
  {
    name: "session-messages",
    path: sessionPathParams,
    query: historyQuery,
    // the first page is the history's start; a later one (a client polling for new messages) usually its end
    sessionRead: (event) => (Number(event.queryStringParameters?.after_seq) > 0 ? "tail" : "head"),
  },
  async (req): Promise<HttpResult> => {
    const auth = await req.authorize(req.path.session_id);
    // read before the page: the page is then at least as new as its tag, so a 304 never hides a change
    const etag = `W/"${auth.session.generation}"`;
    if (noneMatchHits(req.headers["if-none-match"], etag)) return { status: 304, headers: { etag } };
    const page = await req.chat.historyJson(auth, req.query.after_seq, req.query.limit);
    return { status: 200, json: page.json, headers: { etag, "x-cache": page.fromCache ? "hit" : "miss" } };
  },
);
