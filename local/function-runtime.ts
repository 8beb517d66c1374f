import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { ClientContext, Context } from "aws-lambda";
import type { FunctionSpec } from "../functions/manifest.ts";
import { createLambdaContext, newLogStreamName } from "./lambda-context.ts";
import type { RunnerLog } from "./log.ts";

export type LambdaHandler = (event: unknown, context: Context) => unknown;
export type HandlerLoader = (spec: FunctionSpec) => Promise<LambdaHandler>;

/** The error payload Lambda returns for a failed invocation. */
export interface LambdaErrorPayload {
  errorType: string;
  errorMessage: string;
  trace: string[];
}

export type InvokeOutcome =
  | { ok: true; result: unknown; awsRequestId: string; durationMs: number }
  | { ok: false; error: LambdaErrorPayload; timedOut: boolean; awsRequestId: string; durationMs: number };

export interface InvokeOptions {
  awsRequestId?: string;
  clientContext?: ClientContext;
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

class TimedOut {}

/** Lambda's bound on a synchronous invocation's response (its JSON), in bytes. */
export const LAMBDA_RESPONSE_LIMIT = 6_291_556;

/**
 * Whether a result's JSON exceeds Lambda's response limit. An HTTP result is measured by its body's length
 * first (a JSON-escaped UTF-16 unit is at most 6 bytes), so a small one costs no serialization per request.
 */
export function exceedsResponseLimit(result: unknown): boolean {
  const body = (result as { body?: unknown } | null | undefined)?.body;
  if (typeof body === "string" && body.length * 6 < LAMBDA_RESPONSE_LIMIT - 262_144) return false;
  const json = JSON.stringify(result);
  return json !== undefined && Buffer.byteLength(json) > LAMBDA_RESPONSE_LIMIT;
}

const responseTooLarge = (): LambdaErrorPayload => ({
  errorType: "Function.ResponseSizeTooLarge",
  errorMessage: `Response payload size exceeded maximum allowed payload size (${LAMBDA_RESPONSE_LIMIT} bytes).`,
  trace: [],
});

export interface RuntimeOptions {
  functions: readonly FunctionSpec[];
  loadHandler: HandlerLoader;
  log: RunnerLog;
}

/**
 * Runs functions as Lambda would: each handler is imported on first use and stays warm; the function's
 * timeout and the response size limit are enforced. A timed-out handler cannot be stopped in-process, so it runs on in the background
 * (Lambda would freeze and reset the sandbox instead).
 */
export function createFunctionRuntime({ functions, loadHandler, log }: RuntimeOptions): FunctionRuntime {
  const handlers = new Map<string, Promise<LambdaHandler>>();
  const logStreams = new Map<string, string>();
  const inFlight = new Set<Promise<unknown>>();

  const handlerFor = (spec: FunctionSpec) => {
    let pending = handlers.get(spec.name);
    if (!pending) {
      pending = loadHandler(spec);
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
    const context = createLambdaContext(spec, {
      awsRequestId,
      deadline: started + timeoutMs,
      logStreamName,
      ...(options.clientContext ? { clientContext: options.clientContext } : {}),
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<TimedOut>((resolve) => {
      timer = setTimeout(() => resolve(new TimedOut()), timeoutMs);
    });
    const work = (async () => {
      let handler: LambdaHandler;
      try {
        handler = await handlerFor(spec);
      } catch (err) {
        const e = toLambdaError(err);
        throw Object.assign(new Error(`${e.errorType}: ${e.errorMessage}`), {
          name: "Runtime.ImportModuleError",
        });
      }
      return handler(event, context);
    })();
    try {
      const result = await Promise.race([work, timeout]);
      const durationMs = Date.now() - started;
      if (result instanceof TimedOut) {
        work.catch(() => {}); // it may still fail later; nobody is listening any more
        const seconds = spec.timeoutSeconds.toFixed(2);
        const errorMessage = `RequestId: ${awsRequestId} Error: Task timed out after ${seconds} seconds`;
        log("error", `${spec.name} timed out`, { awsRequestId, timeoutSeconds: spec.timeoutSeconds });
        return {
          ok: false,
          timedOut: true,
          awsRequestId,
          durationMs,
          error: { errorType: "Sandbox.Timedout", errorMessage, trace: [] },
        };
      }
      if (exceedsResponseLimit(result)) {
        log("error", `${spec.name} returned more than Lambda can`, { awsRequestId });
        return { ok: false, timedOut: false, awsRequestId, durationMs, error: responseTooLarge() };
      }
      return { ok: true, result, awsRequestId, durationMs };
    } catch (err) {
      const error = toLambdaError(err);
      log("error", `${spec.name} failed: ${error.errorType}: ${error.errorMessage}`, { awsRequestId });
      return { ok: false, timedOut: false, awsRequestId, durationMs: Date.now() - started, error };
    } finally {
      clearTimeout(timer);
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
