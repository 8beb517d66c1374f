import { readJsonSecret } from "./secrets.ts";
import { withTimeout } from "./timeout.ts";

/**
 * Bound on one read of a secret a connection waits for: the SDK sets none, and a read that never answers would hold
 * that connection (and every request waiting on it) for the sandbox's life. A failed read is tried again later.
 */
export const SECRET_READ_TIMEOUT_MS = 5000;

/** readJsonSecret within SECRET_READ_TIMEOUT_MS; `what` names the secret in the error, never its content. */
export function readJsonSecretBounded<T>(arn: string, what: string, fresh = false): Promise<T | undefined> {
  return withTimeout(
    readJsonSecret<T>(arn, fresh),
    SECRET_READ_TIMEOUT_MS,
    () => new Error(`the ${what} secret was not read within ${SECRET_READ_TIMEOUT_MS} ms`),
  );
}
