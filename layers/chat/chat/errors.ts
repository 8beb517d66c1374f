/** Stable error codes of the domain; the HTTP layer maps each to one status. */
export type ChatErrorCode =
  | "validation_failed"
  | "unauthorized"
  | "session_not_found"
  | "message_not_found"
  | "message_not_editable"
  | "version_conflict"
  | "session_busy"
  | "session_full"
  | "idempotency_key_reused"
  | "request_in_progress"
  | "replay_withdrawn"
  | "rate_limited"
  | "service_unavailable";

export interface FieldError {
  path: string;
  message: string;
}

export class ChatError extends Error {
  override name = "ChatError";
  readonly code: ChatErrorCode;
  readonly errors: FieldError[] | undefined;
  /** Seconds a client should wait before retrying, where that is known. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ChatErrorCode,
    message: string,
    opts: { errors?: FieldError[]; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.errors = opts.errors;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }
}

export const isChatError = (e: unknown): e is ChatError => e instanceof ChatError;

/**
 * The words of a 503's detail when a change was sent and its answer never came, so it may have committed: the
 * OpenAPI document quotes them for clients to match (functions/http/openapi-document.ts).
 */
export const MAY_HAVE_BEEN_MADE = "may have been made";
export const MAY_HAVE_BEEN_ERASED = "may have been erased";

/** The seconds a 503's Retry-After asks for: drawn from this range, not one constant (see unavailableRetryAfter). */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = { min: 1, max: 4 } as const;

/**
 * Retry-After for a 503: a whole number of seconds drawn uniformly from UNAVAILABLE_RETRY_AFTER_SECONDS. Clients
 * that failed together (an outage fails every request in flight at once) would, told one constant, all retry in
 * the same second, a wave as large as the load that failed, against a backend just coming back; spread over four
 * seconds, a quarter of it. `random` is for tests.
 */
export function unavailableRetryAfter(random: () => number = Math.random): number {
  const { min, max } = UNAVAILABLE_RETRY_AFTER_SECONDS;
  return min + Math.min(max - min, Math.floor(random() * (max - min + 1)));
}
