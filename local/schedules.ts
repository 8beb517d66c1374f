import { randomUUID } from "node:crypto";
import type { ScheduledEvent } from "aws-lambda";
import type { FunctionSpec } from "../functions/manifest.ts";
import type { FunctionRuntime } from "./function-runtime.ts";
import { LOCAL_ACCOUNT_ID, localRegion } from "./lambda-context.ts";
import type { RunnerLog } from "./log.ts";

const UNIT_MS: Record<string, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** Milliseconds between runs of a `rate(N unit)` expression; undefined for cron(), at() or garbage. */
export function rateToMs(expression: string): number | undefined {
  const m = /^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$/.exec(expression.trim());
  if (!m?.[1] || !m[2]) return undefined;
  const n = Number(m[1]);
  const unit = UNIT_MS[m[2].replace(/s$/, "")];
  return n > 0 && unit ? n * unit : undefined;
}

/**
 * The payload EventBridge Scheduler delivers to a Lambda target that has no Input of its own. Note that
 * Scheduler sends `detail` as the string "{}" (EventBridge *rules* send an object).
 */
export function scheduledEvent(scheduleName: string, now = new Date()): ScheduledEvent<string> {
  const region = localRegion();
  return {
    version: "0",
    id: randomUUID(),
    "detail-type": "Scheduled Event",
    source: "aws.scheduler",
    account: LOCAL_ACCOUNT_ID,
    time: now.toISOString().replace(/\.\d{3}Z$/, "Z"),
    region,
    resources: [`arn:aws:scheduler:${region}:${LOCAL_ACCOUNT_ID}:schedule/default/${scheduleName}`],
    detail: "{}",
  };
}

export interface ScheduleOptions {
  /** Overrides the interval (e.g. for tests); undefined keeps the function's own rate. */
  intervalMs?: (spec: FunctionSpec) => number | undefined;
}

export interface Schedules {
  stop(): Promise<void>;
}

/**
 * Runs every function that has a `rate()` schedule on its timer. As EventBridge Scheduler invokes asynchronously
 * on every tick, whether or not the previous run has finished, a run may overlap the previous one (Lambda runs
 * them side by side): a function on a schedule must tolerate that (the relay's advisory lock does).
 */
export function startSchedules(
  functions: readonly FunctionSpec[],
  runtime: FunctionRuntime,
  log: RunnerLog,
  options: ScheduleOptions = {},
): Schedules {
  const timers: NodeJS.Timeout[] = [];
  const running = new Set<Promise<unknown>>();
  for (const spec of functions) {
    if (!spec.schedule) continue;
    const every = options.intervalMs?.(spec) ?? rateToMs(spec.schedule);
    if (every === undefined) {
      log(
        "warn",
        `${spec.name}: schedule ${spec.schedule} is not run locally (only rate() is); invoke it by name`,
      );
      continue;
    }
    let mine = 0;
    const tick = () => {
      if (mine > 0) log("info", `${spec.name}: previous scheduled run still going; this one runs beside it`);
      const run = runtime.invoke(spec, scheduledEvent(spec.name));
      mine += 1;
      running.add(run);
      run.finally(() => {
        mine -= 1;
        running.delete(run);
      });
    };
    const timer = setInterval(tick, every);
    timer.unref(); // a schedule alone never keeps the process alive
    timers.push(timer);
  }
  return {
    async stop() {
      for (const t of timers) clearInterval(t);
      await Promise.allSettled([...running]);
    },
  };
}
