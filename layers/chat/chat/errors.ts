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
    opts: { errors?: FieldError[]; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.code = code;
    this.errors = opts.errors;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }
}

export const isChatError = (e: unknown): e is ChatError => e instanceof ChatError;
