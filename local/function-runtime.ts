import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { ClientContext, Context } from "aws-lambda";
import type { FunctionSpec } from "../functions/manifest.ts";
import { InvocationLog, withInvocationLog } from "./invocation-log.ts";
import { concurrentInvokeStore, inInvocation } from "./invoke-store.ts";
import { createLambdaContext, newLogStreamName } from "./lambda-context.ts";
import { checkResponse } from "./lambda-response.ts";
import type { RunnerLog } from "./log.ts";

export type LambdaHandler = (event: unknown, context: Context) => unknown;
export type HandlerLoader = (spec: FunctionSpec) => Promise<LambdaHandler>;

/** The error payload Lambda returns for a failed invocation. */
export interface LambdaErrorPayload {
  errorType: string;
  errorMessage: string;
  trace: string[];
}

interface OutcomeBase {
  awsRequestId: string;
  durationMs: number;
  /** The end of what the invocation wrote, when `captureLog` asked for it. */
  log?: string;
}

export type InvokeOutcome =
  /** `json`: the result's JSON when checking it serialized it whole (see checkResponse). */
  | (OutcomeBase & { ok: true; result: unknown; json: string | undefined })
  | (OutcomeBase & { ok: false; error: LambdaErrorPayload; timedOut: boolean });

export interface InvokeOptions {
  awsRequestId?: string;
  /** The ARN the caller named (with its qualifier, if it gave one); the unqualified ARN by default. */
  invokedFunctionArn?: string;
  clientContext?: ClientContext;
  /** Keep the end of what this invocation writes (for Invoke's `LogType: Tail`). */
  captureLog?: boolean;
}

export interface FunctionRuntime {
  find(name: string): FunctionSpec | undefined;
  invoke(spec: FunctionSpec, event: unknown, options?: InvokeOptions): Promise<InvokeOutcome>;
  /** Resolves once every invocation in flight has finished or timed out. */
  drain(): Promise<void>;
}

/** Loads `<dir>/<handler>.ts` and returns its `handler` export. */
export function moduleHandlerLoader(handlersDir: string): HandlerLoader {
  return async (spec) => {
    const file = join(handlersDir, `${spec.handler}.ts`);
    const mod: { handler?: unknown } = await import(pathToFileURL(file).href);
    if (typeof mod.handler !== "function")
      throw new Error(`${file} does not export a function named handler`);
    return mod.handler as LambdaHandler;
  };
}

/** Serializes a thrown value the way the Node.js Lambda runtime does. */
export function toLambdaError(err: unknown): LambdaErrorPayload {
  if (err instanceof Error) {
    return { errorType: err.name, errorMessage: err.message, trace: err.stack?.split("\n") ?? [] };
  }
  return { errorType: typeof err, errorMessage: String(err), trace: [] };
}

/**
 * The line the Node.js runtime logs for an error its handler threw: `<time>\t<request id>\tERROR\tInvoke Error
 * \t` and the error as JSON, its own fields (e.g. `code`) and its stack as an array.
 */
function invokeErrorLine(awsRequestId: string, err: unknown, error: LambdaErrorPayload): string {
  const { errorType, errorMessage, trace: stack } = error;
  let json: string;
  try {
    json = JSON.stringify({ errorType, errorMessage, ...(err instanceof Error ? err : {}), stack });
  } catch {
    json = JSON.stringify({ errorType, errorMessage, stack }); // a field JSON cannot take (a BigInt, a cycle)
  }
  return `${new Date().toISOString()}\t${awsRequestId}\tERROR\tInvoke Error \t${json}\n`;
}

class TimedOut {}

/** Lambda's bound on a function's init phase (on-demand); past it, init goes on inside the first invocation. */
const INIT_LIMIT_MS = 10_000;

export interface RuntimeOptions {
  functions: readonly FunctionSpec[];
  loadHandler: HandlerLoader;
  log: RunnerLog;
}

/**
 * Runs functions as Lambda would: each handler is imported on first use and stays warm; the function's
 * timeout is enforced, and the result is checked as the runtime serializes it (see checkResponse). A timed-out
 * handler cannot be stopped in-process, so it runs on in the background (Lambda would freeze and reset the
 * sandbox instead).
 */
export function createFunctionRuntime({ functions, loadHandler, log }: RuntimeOptions): FunctionRuntime {
  const handlers = new Map<string, Promise<LambdaHandler>>();
  const logStreams = new Map<string, string>();
  const inFlight = new Set<Promise<unknown>>();

  const handlerFor = (spec: FunctionSpec) => {
    let pending = handlers.get(spec.name);
    if (!pending) {
      // The store first: with AWS_LAMBDA_MAX_CONCURRENCY already set, a module that builds a Powertools logger at
      // its top level needs it (as Lambda's runtime creates it before the init phase).
      pending = concurrentInvokeStore().then(() => loadHandler(spec));
      handlers.set(spec.name, pending);
      // Like a failed Lambda init: the next invocation tries again.
      pending.catch(() => handlers.delete(spec.name));
    }
    return pending;
  };

  async function run(spec: FunctionSpec, event: unknown, options: InvokeOptions): Promise<InvokeOutcome> {
    const awsRequestId = options.awsRequestId ?? randomUUID();
    const started = Date.now();
    const timeoutMs = spec.timeoutSeconds * 1000;
    let logStreamName = logStreams.get(spec.name);
    if (!logStreamName) {
      logStreamName = newLogStreamName();
      logStreams.set(spec.name, logStreamName);
    }
    // Lambda's timeout counts from the end of the init phase (the handler's import), which has its own limit;
    // an init past that limit is finished inside the invocation, on the function's timeout.
    let clockFrom: number | undefined;
    let timer: NodeJS.Timeout | undefined;
    let initTimer: NodeJS.Timeout | undefined;
    let startClock: (from: number) => void = () => {};
    const timeout = new Promise<TimedOut>((resolve) => {
      startClock = (from) => {
        if (clockFrom !== undefined) return;
        clockFrom = from;
        clearTimeout(initTimer);
        timer = setTimeout(() => resolve(new TimedOut()), Math.max(0, from + timeoutMs - Date.now()));
      };
      initTimer = setTimeout(() => startClock(started + INIT_LIMIT_MS), INIT_LIMIT_MS);
    });
    let loaded = false;
    const call = async () => {
      let handler: LambdaHandler;
      try {
        handler = await handlerFor(spec);
        loaded = true;
      } catch (err) {
        const e = toLambdaError(err);
        throw Object.assign(new Error(`${e.errorType}: ${e.errorMessage}`), {
          name: "Runtime.ImportModuleError",
        });
      }
      startClock(Date.now());
      const context = createLambdaContext(spec, {
        awsRequestId,
        deadline: (clockFrom ?? started) + timeoutMs,
        logStreamName,
        ...(options.invokedFunctionArn ? { invokedFunctionArn: options.invokedFunctionArn } : {}),
        ...(options.clientContext ? { clientContext: options.clientContext } : {}),
      });
      return inInvocation(awsRequestId, () => handler(event, context));
    };
    const captured = options.captureLog ? new InvocationLog() : undefined;
    const work = captured ? withInvocationLog(captured, call) : call();
    const logged = () => (captured ? { log: captured.toString() } : {});
    try {
      const result = await Promise.race([work, timeout]);
      const durationMs = Date.now() - (clockFrom ?? started);
      if (result instanceof TimedOut) {
        work.catch(() => {}); // it may still fail later; nobody is listening any more
        const seconds = spec.timeoutSeconds.toFixed(2);
        const errorMessage = `RequestId: ${awsRequestId} Error: Task timed out after ${seconds} seconds`;
        log("error", `${spec.name} timed out`, { awsRequestId, timeoutSeconds: spec.timeoutSeconds });
        // Lambda's own line in the function's log, as LogType Tail returns it.
        captured?.append(
          `${new Date().toISOString()} ${awsRequestId} Task timed out after ${seconds} seconds\n`,
        );
        return {
          ok: false,
          timedOut: true,
          awsRequestId,
          durationMs,
          error: { errorType: "Sandbox.Timedout", errorMessage, trace: [] },
          ...logged(),
        };
      }
      const checked = checkResponse(result);
      if (!checked.ok) {
        const { errorType, errorMessage } = checked.error;
        log("error", `${spec.name} failed: ${errorType}: ${errorMessage}`, { awsRequestId });
        return { ok: false, timedOut: false, awsRequestId, durationMs, error: checked.error, ...logged() };
      }
      return { ok: true, result, json: checked.json, awsRequestId, durationMs, ...logged() };
    } catch (err) {
      const error = toLambdaError(err);
      log("error", `${spec.name} failed: ${error.errorType}: ${error.errorMessage}`, { awsRequestId });
      // The Node.js runtime logs what the handler threw before reporting it, so LogType Tail shows it.
      if (loaded) captured?.append(invokeErrorLine(awsRequestId, err, error));
      const durationMs = Date.now() - (clockFrom ?? started);
      return { ok: false, timedOut: false, awsRequestId, durationMs, error, ...logged() };
    } finally {
      clearTimeout(timer);
      clearTimeout(initTimer);
    }
  }

  return {
    find: (name) => functions.find((f) => f.name === name),
    invoke(spec, event, options = {}) {
      const outcome = run(spec, event, options);
      inFlight.add(outcome);
      outcome.finally(() => inFlight.delete(outcome)).catch(() => {});
      return outcome;
    },
    async drain() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}
