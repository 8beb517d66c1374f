import { randomBytes } from "node:crypto";
import type { ClientContext, Context } from "aws-lambda";
import type { FunctionSpec } from "../functions/manifest.ts";

/** The account LocalStack uses too, so ARNs look the same in both. */
export const LOCAL_ACCOUNT_ID = "000000000000";

export function localRegion(): string {
  return process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || "us-east-1";
}

export function functionArn(name: string, region = localRegion()): string {
  return `arn:aws:lambda:${region}:${LOCAL_ACCOUNT_ID}:function:${name}`;
}

/** One log stream per warm "sandbox", named as Lambda names them: `2026/11/26/[$LATEST]<32 hex>`. */
export function newLogStreamName(now = new Date()): string {
  const day = now.toISOString().slice(0, 10).replaceAll("-", "/");
  return `${day}/[$LATEST]${randomBytes(16).toString("hex")}`;
}

export interface ContextOptions {
  awsRequestId: string;
  /** Epoch ms at which the invocation times out. */
  deadline: number;
  logStreamName: string;
  /** Defaults to the function's unqualified ARN. */
  invokedFunctionArn?: string;
  clientContext?: ClientContext;
}

/** The Lambda context object the Node.js runtime passes as the handler's second argument. */
export function createLambdaContext(spec: FunctionSpec, options: ContextOptions): Context {
  const unsupported = (what: string) => () => {
    // The Node.js 24 runtime dropped these callback-era helpers; handlers here must return a promise.
    throw new Error(`context.${what}() is not supported: return (or throw from) an async handler`);
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: spec.name,
    functionVersion: "$LATEST",
    invokedFunctionArn: options.invokedFunctionArn ?? functionArn(spec.name),
    memoryLimitInMB: String(spec.memoryMb),
    awsRequestId: options.awsRequestId,
    logGroupName: `/aws/lambda/${spec.name}`,
    logStreamName: options.logStreamName,
    ...(options.clientContext ? { clientContext: options.clientContext } : {}),
    getRemainingTimeInMillis: () => Math.max(0, options.deadline - Date.now()),
    done: unsupported("done"),
    fail: unsupported("fail"),
    succeed: unsupported("succeed"),
  };
}
