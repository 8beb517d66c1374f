import { httpHandler } from "./http/http-handler.ts";
import { idempotencyRequest, replayHeaders, withoutReplayFlag } from "./http/idempotency-header.ts";
import { createSessionBody } from "./http/schemas.ts";

export const createScope = (sourceIp: string) => `sessions-create:${sourceIp}`;

/** POST /sessions/create: a new session with the bot's welcome message; the token is shown only here. */
export const handler = httpHandler(
  { name: "sessions-create", body: createSessionBody, bodyOptional: true },
  async (req) => {
    // The stored response holds the new session's token, and nothing authenticates a create: a key replays
    // only for requests from the same address, so two clients that happen to pick one key never share a session.
    const idem = idempotencyRequest(
      req.headers,
      createScope(req.event.requestContext.http.sourceIp),
      req.body,
    );
    const created = await req.chat.createSession(req.body, idem);
    return {
      status: 201,
      body: withoutReplayFlag(created),
      headers: { ...replayHeaders(created), "cache-control": "no-store" },
    };
  },
);
