import { Duration, Stack, Validations } from "aws-cdk-lib";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as scheduler from "aws-cdk-lib/aws-scheduler";
import * as targets from "aws-cdk-lib/aws-scheduler-targets";
import { Construct } from "constructs";
import { invokeVersionsFinding } from "./nag.ts";

/**
 * EventBridge Scheduler, no input: Lambda receives Scheduler's default payload, the one the local runner sends
 * (local/schedules.ts), so handlers see the same event everywhere.
 */
export class ChatSchedules extends Construct {
  add(name: string, expression: string, fn: lambda.IFunction, interval?: Duration): scheduler.Schedule {
    // A failed run is not retried: the next tick is the retry (and stale runs would pile up behind it). Lambda
    // keeps a throttled event whatever the retries say, up to the maximum age (6 h unset): a tick it could not
    // start within the interval is dropped too, or a throttled spell's ticks would all run late, in a burst.
    const maxEventAge = Duration.seconds(Math.min(21_600, Math.max(60, interval?.toSeconds() ?? 60)));
    fn.configureAsyncInvoke({ retryAttempts: 0, maxEventAge });
    const schedule = new scheduler.Schedule(this, name, {
      description: `chat-backend ${name}`,
      schedule: scheduler.ScheduleExpression.expression(expression),
      target: new targets.LambdaInvoke(fn, { retryAttempts: 2, maxEventAge: Duration.minutes(1) }),
    });
    // The target role is a stack-level singleton per function, hence acknowledged on the stack.
    Validations.of(Stack.of(this)).acknowledge({
      id: invokeVersionsFinding(fn),
      reason:
        "Scheduler's role may invoke this one function (any version); CDK's standard Lambda target grant.",
    });
    return schedule;
  }
}
