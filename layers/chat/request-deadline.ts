import { currentRequest, runInRequest } from "./request-context.ts";

/**
 * Kept back from the function's remaining time to answer in: a refused ROLLBACK, the problem document, the access
 * line. A step still waiting at the function's timeout ends the invocation with API Gateway's bare 500.
 */
export const ANSWER_MARGIN_MS = 500;

/** The deadline of an invocation with `remainingMs` left (the Lambda context's getRemainingTimeInMillis()). */
export const deadlineAfter = (remainingMs: number): number => Date.now() + remainingMs - ANSWER_MARGIN_MS;

/** Runs `fn` as an invocation that has `remainingMs` left, and nothing else in its context. */
export function withRequestDeadline<T>(remainingMs: number, fn: () => T): T {
  return runInRequest({ deadline: deadlineAfter(remainingMs) }, fn);
}

/** Ms the current invocation may still wait; undefined outside one (scheduled jobs, the consumer, scripts, tests). */
export function timeLeftMs(): number | undefined {
  const deadline = currentRequest()?.deadline;
  return deadline === undefined ? undefined : deadline - Date.now();
}

/** A step the request had no time left to start: nothing was sent, so nothing of it can have been made. */
export class DeadlineExceeded extends Error {
  override name = "DeadlineExceeded";
  constructor(step: string) {
    super(`the request's time ran out before ${step}`);
  }
}
