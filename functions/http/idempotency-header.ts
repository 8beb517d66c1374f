import { ChatError } from "#chat/chat/errors.ts";
import { type IdempotencyRequest, legacyRequestHash, requestHash } from "#chat/db/idempotency-store.ts";

/**
 * The shortest Idempotency-Key `POST /sessions/create` takes. Its replay returns a session token to whoever sends
 * the key again from the same address (nothing else authenticates a create), and clients behind one NAT share an
 * address: a key that short is one a client could guess or pick by chance (`1`, `retry-1`). A UUID is 36.
 */
export const CREATE_KEY_MIN_LENGTH = 16;

/** The longest Idempotency-Key, and the characters one may hold (visible ASCII): what the OpenAPI document states. */
export const IDEMPOTENCY_KEY_MAX_LENGTH = 255;
export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]+$/;

/** Reads `Idempotency-Key` (`minLength`–255 visible ASCII characters); absent means "not idempotent". */
export function idempotencyRequest(
  headers: Record<string, string | undefined>,
  scope: string,
  request: unknown,
  minLength = 1,
): IdempotencyRequest | undefined {
  const key = headers["idempotency-key"];
  if (key === undefined) return undefined;
  if (
    key.length < minLength ||
    key.length > IDEMPOTENCY_KEY_MAX_LENGTH ||
    !IDEMPOTENCY_KEY_PATTERN.test(key)
  ) {
    const rule = `${minLength}–${IDEMPOTENCY_KEY_MAX_LENGTH} visible ASCII characters${minLength > 1 ? " (use a random key, such as a UUID)" : ""}`;
    throw new ChatError("validation_failed", `Idempotency-Key must be ${rule}`, {
      errors: [{ path: "headers.idempotency-key", message: rule }],
    });
  }
  // Hashed on first use, which is after the service validated the request: hashing hostile input (say,
  // metadata nested thousands deep) before validation would overflow the stack.
  let hash: string | undefined;
  let legacy: string | undefined;
  return {
    scope,
    key,
    get requestHash() {
      hash ??= requestHash(request, { scope, key });
      return hash;
    },
    get legacyRequestHash() {
      legacy ??= legacyRequestHash(request);
      return legacy;
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
