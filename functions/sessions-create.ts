import { httpHandler } from "./http/http-handler.ts";
import {
  CREATE_KEY_MIN_LENGTH,
  idempotencyRequest,
  replayHeaders,
  withoutReplayFlag,
} from "./http/idempotency-header.ts";
import { createSessionBody } from "./http/schemas.ts";

export const createScope = (sourceIp: string) => `sessions-create:${sourceIp}`;

/** POST /sessions/create: a new session with the bot's welcome message; the token is shown only here. */
export const handler = httpHandler(
  { name: "sessions-create", body: createSessionBody, bodyOptional: true },
  async (req) => {
    // The stored response holds the new session's token, and nothing authenticates a create: a key replays
    // only for requests from the same address, and only a key long enough not to be picked by two clients behind
    // one address (a NAT) or guessed by one of them.
    const idem = idempotencyRequest(
      req.headers,
      createScope(req.event.requestContext.http.sourceIp),
      req.body,
      CREATE_KEY_MIN_LENGTH,
    );
    const created = await req.chat.createSession(req.body, idem);
    return {
      status: 201,
      body: withoutReplayFlag(created),
      sessionId: created.session.session_id,
      headers: {
        ...replayHeaders(created),
        // what the 201 created (RFC 9110 §15.3.2), as a reference relative to this API's origin, which it is served
        // at the root of (API Gateway's $default stage, the local runner), as the OpenAPI document's `servers` says
        location: `/sessions/${created.session.session_id}`,
        "cache-control": "no-store",
      },
    };
  },
);
