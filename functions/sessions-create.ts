import { httpHandler } from "./http/http-handler.ts";
import { idempotencyRequest, replayHeaders, withoutReplayFlag } from "./http/idempotency-header.ts";
import { createSessionBody } from "./http/schemas.ts";

/** POST /sessions/create: a new session with the bot's welcome message; the token is shown only here. */
export const handler = httpHandler(
  { name: "sessions-create", body: createSessionBody, bodyOptional: true },
  async (req) => {
    const idem = idempotencyRequest(req.headers, "sessions-create", req.body);
    const created = await req.chat.createSession(req.body, idem);
    return {
      status: 201,
      body: withoutReplayFlag(created),
      headers: { ...replayHeaders(created), "cache-control": "no-store" },
    };
  },
);
