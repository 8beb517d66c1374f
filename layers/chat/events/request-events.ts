import { currentRequest, runInRequest } from "../request-context.ts";

/**
 * What a request's changes put on their way to the topic, for its access line: the ids of the events they committed
 * (an event leads back to the request that made it, a request to its events, on the topic or in the outbox), and
 * why the after-commit publish did not send them, if it did not.
 */
export interface RequestEvents {
  ids: string[];
  /** Why they were not sent after commit: a fixed word (`backoff`, `deadline`, `timeout`, an error's name), never a message. */
  notSent?: string;
  /** A change sent whose answer never came (its 503 says it may have been made): in the outbox if it was. */
  uncertain?: string[];
}

/** Runs `fn` with the events its changes commit noted in `into`, and nothing else in its context. */
export const withRequestEvents = <T>(into: RequestEvents, fn: () => Promise<T>): Promise<T> =>
  runInRequest({ events: into }, fn);

/** A committed change's event ids (outside a request, e.g. a test's own service call, nothing is kept). */
export function noteCommittedEvents(ids: readonly string[]): void {
  currentRequest()?.events?.ids.push(...ids);
}

/** The after-commit publish did not send the request's events within its bound: the relay will (or a late send). */
export function noteNotSent(reason: string): void {
  const store = currentRequest()?.events;
  if (store) store.notSent ??= reason;
}

/** A change Postgres may have committed without saying so: its events exist if, and only if, it did. */
export function noteUncertainEvents(ids: readonly string[]): void {
  const store = currentRequest()?.events;
  if (store) store.uncertain = [...(store.uncertain ?? []), ...ids];
}
