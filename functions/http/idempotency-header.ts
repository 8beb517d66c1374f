import { ChatError } from "#chat/chat/errors.ts";
import { type IdempotencyRequest, requestHash } from "#chat/db/idempotency-store.ts";

/** Reads `Idempotency-Key` (1–255 visible ASCII characters); absent means "not idempotent". */
export function idempotencyRequest(
  headers: Record<string, string | undefined>,
  scope: string,
  request: unknown,
): IdempotencyRequest | undefined {
  const key = headers["idempotency-key"];
  if (key === undefined) return undefined;
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new ChatError("validation_failed", "Idempotency-Key must be 1–255 visible ASCII characters", {
      errors: [{ path: "headers.idempotency-key", message: "1–255 visible ASCII characters" }],
    });
  }
  // Hashed on first use, which is after the service validated the request: hashing hostile input (say,
  // metadata nested thousands deep) before validation would overflow the stack.
  let hash: string | undefined;
  return {
    scope,
    key,
    get requestHash() {
      hash ??= requestHash(request);
      return hash;
    },
  };
}

/** The replay marker header, when the response is a replay. */
export const replayHeaders = (result: { replayed?: boolean }): Record<string, string> =>
  result.replayed ? { "idempotent-replayed": "true" } : {};

/** The stored body, without the in-process replay marker. */
export function withoutReplayFlag<T extends { replayed?: boolean }>(result: T): Omit<T, "replayed"> {
  const { replayed: _r, ...body } = result;
  return body;
}
