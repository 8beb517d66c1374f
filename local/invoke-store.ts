import type { InvokeStoreBase } from "@aws/lambda-invoke-store";

/**
 * The runner runs invocations side by side in one process, as Lambda Managed Instances do with
 * AWS_LAMBDA_MAX_CONCURRENCY set: the runtime then runs each invocation inside the Lambda InvokeStore (an
 * AsyncLocalStorage), and Powertools keeps its per-invocation state there (the logger's Lambda context and keys,
 * the metrics' buffer) instead of on the shared instance. Without it, concurrent invocations overwrote each other's
 * logger context: a log line could carry another function's name and request id.
 */
let store: Promise<InvokeStoreBase> | undefined;

export function concurrentInvokeStore(): Promise<InvokeStoreBase> {
  store ??= (async () => {
    const { InvokeStore } = await import("@aws/lambda-invoke-store");
    const instance = await InvokeStore.getInstanceAsync(true);
    // What tells Powertools to use the store; only set once the store exists (Powertools throws without it).
    process.env.AWS_LAMBDA_MAX_CONCURRENCY ??= "1000";
    return instance;
  })();
  return store;
}

/** Runs `fn` as the invocation `awsRequestId` in the InvokeStore. */
export async function inInvocation<T>(awsRequestId: string, fn: () => T): Promise<Awaited<T>> {
  const instance = await concurrentInvokeStore();
  const keys = (instance.constructor as typeof InvokeStoreBase).PROTECTED_KEYS;
  return await instance.run({ [keys.REQUEST_ID]: awsRequestId }, fn);
}
