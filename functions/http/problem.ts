import type { ChatErrorCode } from "#chat/chat/errors.ts";

/** Error codes only the HTTP layer produces. */
export type HttpErrorCode =
  | "malformed_json"
  | "route_not_found"
  | "method_not_allowed"
  | "precondition_failed"
  | "payload_too_large"
  | "unsupported_media_type"
  | "internal_error";

export type ErrorCode = ChatErrorCode | HttpErrorCode;

/** One status per code: the contract's table. */
export const statusOf: Record<ErrorCode, number> = {
  validation_failed: 400,
  malformed_json: 400,
  unauthorized: 401,
  session_not_found: 404,
  message_not_found: 404,
  route_not_found: 404,
  method_not_allowed: 405,
  message_not_editable: 409,
  session_busy: 409,
  session_full: 409,
  version_conflict: 409,
  request_in_progress: 409,
  replay_withdrawn: 409,
  precondition_failed: 412,
  payload_too_large: 413,
  unsupported_media_type: 415,
  idempotency_key_reused: 422,
  rate_limited: 429,
  internal_error: 500,
  service_unavailable: 503,
};

const titles: Record<ErrorCode, string> = {
  validation_failed: "Validation failed",
  malformed_json: "Malformed JSON",
  unauthorized: "Unauthorized",
  session_not_found: "Session not found",
  message_not_found: "Message not found",
  route_not_found: "Route not found",
  method_not_allowed: "Method not allowed",
  message_not_editable: "Message not editable",
  session_busy: "Session busy",
  session_full: "Session full",
  version_conflict: "Version conflict",
  request_in_progress: "Request in progress",
  replay_withdrawn: "Replay withdrawn",
  precondition_failed: "Precondition failed",
  payload_too_large: "Payload too large",
  unsupported_media_type: "Unsupported media type",
  idempotency_key_reused: "Idempotency key reused",
  rate_limited: "Too many requests",
  internal_error: "Internal error",
  service_unavailable: "Service unavailable",
};

export class HttpProblem extends Error {
  override name = "HttpProblem";
  readonly code: HttpErrorCode;
  readonly headers: Record<string, string>;
  constructor(code: HttpErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.code = code;
    this.headers = headers;
  }
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  request_id: string;
  errors?: { path: string; message: string }[];
}

/** RFC 9457 problem details; `type` is a stable URI per code. */
export function problem(
  code: ErrorCode,
  detail: string,
  requestId: string,
  errors?: { path: string; message: string }[],
): ProblemBody {
  return {
    type: `https://chat-backend.example/problems/${code.replaceAll("_", "-")}`,
    title: titles[code],
    status: statusOf[code],
    detail,
    code,
    request_id: requestId,
    ...(errors?.length ? { errors } : {}),
  };
}
