import type middy from "@middy/core";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { getRedis } from "#chat/cache/redis-client.ts";
import { type PrefetchedEntries, type SessionRead, sessionReadCommands } from "#chat/cache/session-cache.ts";
import { ChatError } from "#chat/chat/errors.ts";
import { config } from "#chat/config.ts";
import { rateLimitHeaders } from "#chat/ratelimit/headers.ts";
import {
  ipPartition,
  policiesFromLimits,
  type RateCheck,
  type RateDecision,
  tokenPartition,
} from "#chat/ratelimit/policies.ts";
import { RateLimiter } from "#chat/ratelimit/rate-limiter.ts";
import { bearerToken } from "./bearer-token.ts";
import { logger } from "./logger.ts";

/** Functions that are never limited: the health check (probes, canaries) and the OpenAPI document. */
export const RATE_LIMIT_EXEMPT: ReadonlySet<string> = new Set(["health", "openapi"]);

let limiter: RateLimiter | undefined;

/** The process-wide limiter: the shared Redis client when there is one, this process's memory otherwise. */
export function getRateLimiter(): RateLimiter {
  if (limiter) return limiter;
  const cfg = config();
  limiter = new RateLimiter({
    redis: getRedis,
    timeoutMs: cfg.REDIS_COMMAND_TIMEOUT_MS,
    readyWaitMs: cfg.REDIS_CONNECT_TIMEOUT_MS,
    onFallback: (err) =>
      logger.warn("rate limiter: Redis unavailable, limiting in this process for now", {
        error: err instanceof Error ? { name: err.name, code: (err as { code?: string }).code } : typeof err,
      }),
  });
  return limiter;
}

/** For tests that change the limits or the Redis URL between cases (with resetConfig). */
export function resetRateLimiter(): void {
  limiter = undefined;
}

/** The checks for a request: its bearer token (hashed) and its client address, per the configured limits. */
export function rateChecks(event: APIGatewayProxyEventV2): RateCheck[] {
  const policies = policiesFromLimits(config());
  const checks: RateCheck[] = [];
  const token = bearerToken(event.headers?.authorization);
  if (policies.token && token) checks.push({ policy: policies.token, key: tokenPartition(token) });
  const ip = ipPartition(event.requestContext?.http?.sourceIp);
  if (policies.ip && ip) checks.push({ policy: policies.ip, key: ip });
  return checks;
}

/**
 * Rate limits per session token and per client address, before the request is parsed or the chat
 * service does anything: a refused request changes nothing. Over a limit: 429 `rate_limited` with
 * Retry-After. Every answer of a limited function carries RateLimit and RateLimit-Policy.
 *
 * Sits just before the problem middleware, so its `after`/`onError` run once the response (or the
 * problem response) exists and can add the fields to it.
 */
/** What the limiter's round trip read for the handler, by the event it was read for. */
const prefetches = new WeakMap<APIGatewayProxyEventV2, PrefetchedEntries>();

/** The session's cache entries read together with this request's rate limit, if they were. */
export function prefetchedSession(event: APIGatewayProxyEventV2): PrefetchedEntries | undefined {
  return prefetches.get(event);
}

/** Why a request was refused (the policies over their limit, and which limiter decided), for its access line. */
export interface RateLimitRefusal {
  rate_limited: string[];
  limiter: RateDecision["source"];
}
const refusals = new WeakMap<APIGatewayProxyEventV2, RateLimitRefusal>();

/** The refusal of a request answered 429 by the limiter, if it was. */
export function rateLimitRefusal(event: APIGatewayProxyEventV2): RateLimitRefusal | undefined {
  return refusals.get(event);
}

/**
 * The session a request is about, guessed before parsing: the path parameter, a `"session_id":"<uuid>"` in the
 * JSON body, or, with no body, a `session_id` query parameter (a delete's ids may come that way). Only decides
 * what to read ahead; the handler still validates the request, and a prefetch for another session id than the
 * validated one is ignored.
 */
export function sessionHint(event: APIGatewayProxyEventV2): string | undefined {
  const fromPath = event.pathParameters?.session_id;
  if (fromPath) return fromPath;
  if (!event.body) return event.queryStringParameters?.session_id;
  if (event.isBase64Encoded || event.body.length > 65_536) return undefined;
  return event.body.match(/"session_id"\s*:\s*"([0-9a-fA-F-]{36})"/)?.[1];
}

/**
 * `read`: what the limiter's round trip reads ahead of the request's session (see SessionRead); nothing unless the
 * function says what it reads: a function with no session (create, route-not-found) would read for nothing, at
 * any unauthenticated caller's choice of session (up to CACHE_HISTORY_MAX_BYTES under the limiter's timeout).
 */
export function rateLimit(
  name: string,
  read?: SessionRead | ((event: APIGatewayProxyEventV2) => SessionRead),
): middy.MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> {
  if (RATE_LIMIT_EXEMPT.has(name)) return { before: () => undefined };
  const fields = new WeakMap<object, Record<string, string>>();
  const addFields = (request: middy.Request<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>) => {
    const extra = fields.get(request);
    if (extra && request.response) request.response.headers = { ...request.response.headers, ...extra };
  };
  return {
    before: async (request) => {
      const checks = rateChecks(request.event);
      if (checks.length === 0) return;
      let decision: RateDecision & { got?: unknown[] };
      const reads = typeof read === "function" ? read(request.event) : read;
      const hint = reads ? sessionHint(request.event) : undefined;
      const sentAt = performance.now();
      try {
        decision = await getRateLimiter().check(
          checks,
          hint && reads ? sessionReadCommands(hint, reads) : undefined,
        );
      } catch (err) {
        // the limiter already absorbs Redis failures; anything else must not fail the request either
        logger.error("rate limiter failed; request let through", {
          function: name,
          error: err instanceof Error ? err.name : typeof err,
        });
        return;
      }
      fields.set(request, rateLimitHeaders(decision.results));
      if (hint && reads && decision.got)
        prefetches.set(request.event, { sessionId: hint, read: reads, values: decision.got, sentAt });
      if (!decision.allowed) {
        const policies = decision.results.filter((r) => !r.allowed).map((r) => r.policy.name);
        // On the access line, not a line of its own: a client ignoring its 429s would double their log bytes.
        refusals.set(request.event, { rate_limited: policies, limiter: decision.source });
        throw new ChatError(
          "rate_limited",
          `too many requests (${policies.join(", ")}); retry in ${decision.retryAfterSeconds} s`,
          { retryAfterSeconds: decision.retryAfterSeconds },
        );
      }
    },
    after: addFields,
    onError: addFields,
  };
}
