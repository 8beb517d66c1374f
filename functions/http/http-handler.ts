import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import httpCors from "@middy/http-cors";
import httpHeaderNormalizer from "@middy/http-header-normalizer";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import type { ZodMiniType } from "zod/mini";
import type { SessionRead } from "#chat/cache/session-cache.ts";
import type { AuthorizedSession, ChatService } from "#chat/chat/chat-service.ts";
import { isChatError, unavailableRetryAfter } from "#chat/chat/errors.ts";
import { config } from "#chat/config.ts";
import type { RequestEvents } from "#chat/events/request-events.ts";
import { runInRequest } from "#chat/request-context.ts";
import { deadlineAfter } from "#chat/request-deadline.ts";
import { CORS_EXPOSED_HEADERS, corsOriginAllowed } from "./cors-headers.ts";
import { LOG_CONTEXT, logger } from "./logger.ts";
import { MIDDY_OPTIONS } from "./middy-options.ts";
import { HttpProblem, type ProblemBody, problem } from "./problem.ts";
import { prefetchedSession, rateLimit, rateLimitRefusal } from "./rate-limit.ts";
import { parseRequest } from "./request-parsing.ts";
import { apiSecurityHeaders } from "./security-headers.ts";
import { isBackendUnavailable, unavailableReason } from "./service-errors.ts";

export interface HttpSpec<B, Q, P> {
  /** The manifest name of the function. */
  name: string;
  body?: ZodMiniType<B>;
  /** sessions/create takes an empty body as `{}`. */
  bodyOptional?: boolean;
  /** DELETE /messages/delete: the body's fields may come as query parameters instead. */
  bodyFromQuery?: boolean;
  query?: ZodMiniType<Q>;
  path?: ZodMiniType<P>;
  /** Health and the OpenAPI document do not need the chat service (nor a database to build it). */
  chat?: false;
  /** What the rate limiter's round trip reads ahead of the session the request names (default: nothing). */
  sessionRead?: SessionRead | ((event: APIGatewayProxyEventV2) => SessionRead);
}

export interface HttpRequest<B, Q, P> {
  event: APIGatewayProxyEventV2;
  requestId: string;
  body: B;
  query: Q;
  path: P;
  headers: Record<string, string | undefined>;
  /** The bearer token, if any. Never logged. */
  token: string | undefined;
  chat: ChatService;
  /**
   * chat.authorize with the request's token and the session's cache entries the rate limiter read ahead in its
   * round trip; without them (none was sent, or it failed) it reads no more of the cache than the function's
   * `sessionRead` would have.
   */
  authorize(sessionId: string): Promise<AuthorizedSession>;
}

export interface HttpResult {
  status: number;
  body?: unknown;
  /** The body already serialized as JSON (instead of `body`), e.g. a history page cut from the cache. */
  json?: string;
  headers?: Record<string, string>;
  /** The session the request created, for its log lines (one it names is logged once it asks to authorize). */
  sessionId?: string;
}

type Handler = (
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyStructuredResultV2>;

/**
 * The session a request is about, for its log lines: a change's events carry it (`subject`), so an event on the
 * topic leads to the request that made it. Set when the handler authorizes (a validated id) or created one.
 */
const requestSessions = new WeakMap<APIGatewayProxyEventV2, string>();

/** The events a request's changes committed, for the same lines: each event's id leads to its request and back. */
const requestEvents = new WeakMap<APIGatewayProxyEventV2, RequestEvents>();

// Chat data and tokens are private: nothing is stored by a cache unless the handler says otherwise.
const NO_STORE = { "cache-control": "no-store" };

const json = (result: HttpResult) =>
  result.status === 204 || result.status === 304
    ? { statusCode: result.status, headers: { ...NO_STORE, ...result.headers } }
    : {
        statusCode: result.status,
        headers: { "content-type": "application/json", ...NO_STORE, ...result.headers },
        body: result.json ?? JSON.stringify(result.body ?? null),
      };

/**
 * The one middy chain every HTTP function uses: header normalization → security headers → CORS →
 * problem responses → parse (size, media type, JSON) and zod → handler. The problem middleware is the
 * only place that builds an error response; CORS and security headers are added to those too.
 */
export function httpHandler<B = undefined, Q = undefined, P = undefined>(
  spec: HttpSpec<B, Q, P>,
  fn: (req: HttpRequest<B, Q, P>) => Promise<HttpResult>,
): Handler {
  const base = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Error, Context>(MIDDY_OPTIONS)
    .use(startTimer)
    .use(httpHeaderNormalizer())
    .use(apiSecurityHeaders())
    .use(injectLambdaContext(logger, LOG_CONTEXT));
  const cors = config().CORS_ORIGINS;
  const chain = cors.length
    ? base.use(
        httpCors({
          origins: cors,
          // as API Gateway reads the list (middy would take `https://*` for dot-less host names only)
          getOrigin: (origin) =>
            cors.includes("*") ? "*" : origin && corsOriginAllowed(origin, cors) ? origin : null,
          exposeHeaders: CORS_EXPOSED_HEADERS.join(","),
        }),
      )
    : base;
  // Rate limit just before problemResponses: its after/onError then see the response problemResponses built.
  const limited = chain.use(rateLimit(spec.name, spec.sessionRead));
  // The chat runtime (pg, ioredis, the chat service) only where the function uses it: openapi and health never
  // load it. The import starts here, at init, so the functions that use it still pay for it during init, as with
  // a static import, not on their first request. (esbuild inlines it; a rejection is reported by the handler.)
  const runtime = spec.chat === false ? undefined : import("#chat/chat-runtime.ts");
  runtime?.catch(() => undefined);
  const handler = limited.use(problemResponses(spec.name)).handler(async (event) => {
    const parsed = parseRequest(spec, event);
    const chat = runtime ? await (await runtime).getChatService() : (undefined as unknown as ChatService);
    const prefetched = prefetchedSession(event);
    const read = typeof spec.sessionRead === "function" ? spec.sessionRead(event) : spec.sessionRead;
    const authorize = (sessionId: string) => {
      requestSessions.set(event, sessionId);
      return chat.authorize(sessionId, parsed.token, prefetched, read);
    };
    const result = await fn({ ...parsed, event, requestId: requestIdOf(event), chat, authorize });
    if (result.sessionId) requestSessions.set(event, result.sessionId);
    return json(result);
  }) as unknown as Handler;
  return (event, context) => {
    // Every backend wait of the request ends in time for its problem document, before the function's timeout; the
    // events its changes commit are noted for its log lines.
    const events: RequestEvents = { ids: [] };
    requestEvents.set(event, events);
    return runInRequest({ deadline: deadlineAfter(context.getRemainingTimeInMillis()), events }, () =>
      handler(event, context),
    );
  };
}

function requestIdOf(event: APIGatewayProxyEventV2): string {
  return event.requestContext?.requestId ?? "unknown";
}

/** First in the chain, so the access log's duration covers every middleware (the rate limiter too). */
const startTimer: middy.MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> = {
  before: (request) => {
    (request.internal as Record<string, unknown>).startedAt = performance.now();
  },
};

function problemResponses(
  name: string,
): middy.MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> {
  return {
    after: (request) => {
      const res = request.response;
      if (res) res.headers = { ...res.headers, "x-request-id": requestIdOf(request.event) };
      accessLog(name, request.event, res?.statusCode ?? 200, request.internal);
    },
    onError: (request) => {
      const requestId = requestIdOf(request.event);
      const { body, headers } = toProblem(request.error, requestId);
      // RFC 9110 §15.5.2: a 401 names the scheme that would authenticate the request (RFC 6750: Bearer).
      if (body.status === 401) headers["www-authenticate"] ??= WWW_AUTHENTICATE;
      if (body.status >= 500)
        logger.error("request failed", {
          function: name,
          error: describe(request.error),
          request_id: requestId,
          session_id: requestSessions.get(request.event),
          ...eventFields(request.event),
        });
      request.response = {
        statusCode: body.status,
        headers: {
          "content-type": "application/problem+json",
          ...NO_STORE,
          "x-request-id": requestId,
          ...headers,
        },
        body: JSON.stringify(body),
      };
      accessLog(name, request.event, body.status, request.internal);
    },
  };
}

export const WWW_AUTHENTICATE = 'Bearer realm="chat"';

function toProblem(err: unknown, requestId: string): { body: ProblemBody; headers: Record<string, string> } {
  if (err instanceof HttpProblem)
    return { body: problem(err.code, err.message, requestId), headers: err.headers };
  if (isChatError(err)) {
    const headers: Record<string, string> = {};
    if (err.retryAfterSeconds !== undefined) headers["retry-after"] = String(err.retryAfterSeconds);
    return { body: problem(err.code, err.message, requestId, err.errors), headers };
  }
  if (isBackendUnavailable(err)) {
    return {
      body: problem("service_unavailable", "a backend service is unavailable; retry shortly", requestId),
      headers: { "retry-after": String(unavailableRetryAfter()) },
    };
  }
  return { body: problem("internal_error", "an unexpected error occurred", requestId), headers: {} };
}

/**
 * Name, code and, for a backend away, which way (a fixed word; a 503 the service words itself keeps its cause's):
 * never the message, which can quote user input.
 */
function describe(err: unknown): Record<string, unknown> {
  return err instanceof Error
    ? {
        name: err.name,
        code: (err as { code?: string }).code,
        reason: unavailableReason(err) ?? unavailableReason(err.cause),
      }
    : { name: typeof err };
}

function accessLog(
  name: string,
  event: APIGatewayProxyEventV2,
  status: number,
  internal: Record<string, unknown>,
) {
  const started = internal.startedAt as number | undefined;
  logger.info("request", {
    function: name,
    route: event.routeKey,
    status,
    duration_ms: started === undefined ? undefined : Math.round((performance.now() - started) * 100) / 100,
    request_id: requestIdOf(event),
    session_id: requestSessions.get(event),
    ...eventFields(event),
    ...rateLimitRefusal(event),
  });
}

/**
 * `event_ids` only on a request that committed a change, `events_not_sent` when its fast path left them to the
 * relay; `maybe_event_ids` on one whose change went unanswered (a 503 that says it may have been made).
 */
function eventFields(event: APIGatewayProxyEventV2) {
  const { ids = [], notSent, uncertain } = requestEvents.get(event) ?? {};
  return {
    ...(ids.length ? { event_ids: ids } : {}),
    ...(ids.length && notSent !== undefined ? { events_not_sent: notSent } : {}),
    ...(uncertain?.length ? { maybe_event_ids: uncertain } : {}),
  };
}
