import { fileURLToPath } from "node:url";
import type { BenchDatabases } from "./db.ts";
import { REDIS_URL } from "./db.ts";

export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");
export const WORKERS = {
  api: fileURLToPath(new URL("../workers/api-worker.ts", import.meta.url)),
  raw: fileURLToPath(new URL("../workers/raw-worker.ts", import.meta.url)),
  coldProbe: fileURLToPath(new URL("../workers/cold-probe.mjs", import.meta.url)),
  requireTimes: fileURLToPath(new URL("../workers/require-times.cjs", import.meta.url)),
};

export interface BenchContext {
  smoke: boolean;
  dbs: BenchDatabases;
  redisUrl: string;
  /** Extra node flags for workers (e.g. --cpu-prof). */
  workerExecArgv: string[];
  log(message: string): void;
  /** A worker's environment: the bench's own settings on top of a clean copy of this one. */
  env(extra: Record<string, string | undefined>): Record<string, string | undefined>;
}

/** Variables of the product that must not leak from the caller's shell into a benchmark. */
const PRODUCT_VARS =
  /^(DATABASE_|DB_|REDIS_|CACHE_|KAFKA_|MSK_|OUTBOX_|IDEMPOTENCY_|SESSION_|RESPONDER|BEDROCK_|RATE_LIMIT_|CORS_|HEALTH_URL|POWERTOOLS_|LOCAL_|NODE_OPTIONS$)/;

export function makeContext(opts: {
  smoke: boolean;
  dbs: BenchDatabases;
  workerExecArgv: string[];
  /** performance.now() at which the run started, for log timestamps. */
  started?: number;
}): BenchContext {
  const started = opts.started ?? performance.now();
  return {
    smoke: opts.smoke,
    dbs: opts.dbs,
    workerExecArgv: opts.workerExecArgv,
    redisUrl: REDIS_URL,
    log: (m) => process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1)}s] ${m}\n`),
    env(extra) {
      const base: Record<string, string | undefined> = {};
      for (const [k, v] of Object.entries(process.env)) if (!PRODUCT_VARS.test(k)) base[k] = v;
      return {
        ...base,
        // Logging at INFO (one access-log line per request) would dominate the figures.
        POWERTOOLS_LOG_LEVEL: "WARN",
        POWERTOOLS_SERVICE_NAME: "chat-backend",
        POWERTOOLS_METRICS_DISABLED: "true",
        LOCAL_SCHEDULES: "off",
        AWS_REGION: "us-east-1",
        // The runner hosts every concurrent "sandbox" in one process: give it as many connections as the
        // raw path gets at c=16 (a Lambda sandbox serves one request at a time with DB_POOL_MAX=2).
        DB_POOL_MAX: "16",
        // Rate limiting stays on (its Redis round trip is part of every request) but never refuses: all the
        // load comes from one address. A 1 s window keeps the sliding-window logs as small as production's.
        RATE_LIMIT_PER_TOKEN: "1000000000",
        RATE_LIMIT_PER_IP: "1000000000",
        RATE_LIMIT_WINDOW_SECONDS: "1",
        ...extra,
      };
    },
  };
}
