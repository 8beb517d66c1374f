import { AsyncLocalStorage } from "node:async_hooks";
import type { RequestEvents } from "./events/request-events.ts";

/**
 * What one invocation of an HTTP function carries down to the layer's code: its deadline (request-deadline.ts) and
 * the events its changes commit (events/request-events.ts). Per invocation, not per process: the local runner (and
 * Lambda with AWS_LAMBDA_MAX_CONCURRENCY) runs several invocations of one function side by side. One store, so one
 * `run` per request.
 */
export interface RequestContext {
  /** Epoch ms by which the invocation must stop waiting on a backend; absent: no bound but each step's own. */
  deadline?: number;
  /** Where the request's changes note their events; absent: nothing is kept. */
  events?: RequestEvents;
}

const current = new AsyncLocalStorage<RequestContext>();

/** Runs `fn` as the invocation `context` describes. */
export const runInRequest = <T>(context: RequestContext, fn: () => T): T => current.run(context, fn);

/** The current invocation's context; undefined outside one (scheduled jobs, the consumer, scripts, tests). */
export const currentRequest = (): RequestContext | undefined => current.getStore();
