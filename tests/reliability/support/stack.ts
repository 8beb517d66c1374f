import pg from "pg";
import { type MockKafka, startMockKafka } from "../../helpers/kafka-mock-cluster.ts";
import { type PrivatePostgres, startPrivatePostgres } from "../../helpers/private-postgres.ts";
import { type PrivateRedis, startPrivateRedis } from "../../helpers/private-redis.ts";
import { type RunnerProcess, startRunnerProcess } from "../../helpers/runner-process.ts";

export const TOPIC = "chat-messages";

/**
 * The local runner shares one pg pool between all its functions and all concurrent requests, where Lambda gives
 * each concurrent request its own process (DB_POOL_MAX=2 each). 10 keeps 16–32 concurrent requests from
 * queueing on two connections, which would measure the runner, not the backend.
 */
export const RUNNER_DB_POOL_MAX = Number(process.env.RELIABILITY_DB_POOL_MAX ?? 10);

/** Everything the scenarios of one file fault: private, so the machine's shared services stay up. */
export interface Backends {
  pg: PrivatePostgres;
  redis: PrivateRedis | undefined;
  kafka: MockKafka | undefined;
  close(): Promise<void>;
}

export async function startBackends(opts: { redis?: boolean; kafka?: boolean } = {}): Promise<Backends> {
  const [postgres, redis] = await Promise.all([
    startPrivatePostgres(),
    opts.redis ? startPrivateRedis() : Promise.resolve(undefined),
  ]);
  const kafka = opts.kafka
    ? startMockKafka({ brokers: 3, topics: [{ name: TOPIC, partitions: 4 }] })
    : undefined;
  return {
    pg: postgres,
    redis,
    kafka,
    async close() {
      kafka?.stop();
      await redis?.stop();
      await postgres.destroy();
    },
  };
}

/** One scenario: its own database on the private cluster, a runner process on it, and a pool to verify with. */
export interface Scenario {
  name: string;
  dbUrl: string;
  /** The test's own pool on the scenario database (not the runner's). */
  db: pg.Pool;
  runner: RunnerProcess;
  env: Record<string, string>;
  /** Starts a new runner process on the same port and database (after a kill). */
  restartRunner(): Promise<RunnerProcess>;
  close(): Promise<void>;
}

export async function startScenario(
  backends: Backends,
  name: string,
  extraEnv: Record<string, string> = {},
): Promise<Scenario> {
  const dbName = `chat_${name.replace(/[^a-z0-9]/gi, "_").toLowerCase()}`;
  const dbUrl = await backends.pg.createDatabase(dbName);
  const env: Record<string, string> = {
    DATABASE_URL: dbUrl,
    LOCAL_SCHEDULES: "off",
    DB_POOL_MAX: String(RUNNER_DB_POOL_MAX),
    POWERTOOLS_LOG_LEVEL: "ERROR",
    AWS_REGION: "us-east-1",
    RESPONDER: "builtin",
    // One client address and a few tokens send all the load: limits high enough never to refuse it, while
    // the limiter (and its Redis path) still runs on every request.
    RATE_LIMIT_PER_TOKEN: "100000000",
    RATE_LIMIT_PER_IP: "100000000",
    ...(backends.redis ? { REDIS_URL: backends.redis.url } : {}),
    ...(backends.kafka ? { KAFKA_BROKERS: backends.kafka.bootstrap } : {}),
    ...extraEnv,
  };
  const db = new pg.Pool({ connectionString: dbUrl, max: 4, connectionTimeoutMillis: 5000 });
  db.on("error", () => {});
  const scenario: Scenario = {
    name,
    dbUrl,
    db,
    env,
    runner: await startRunnerProcess({ env }),
    async restartRunner() {
      scenario.runner = await startRunnerProcess({ env, port: scenario.runner.port });
      return scenario.runner;
    },
    async close() {
      // SIGTERM, then SIGKILL after 5 s: after a Kafka outage the runner's own shutdown takes ~25 s (its Kafka
      // bridge's consumer.disconnect() waits out a group rejoin), which is not what these tests measure.
      await scenario.runner.kill("SIGTERM", 5000).catch(() => {});
      await db.end().catch(() => {});
    },
  };
  return scenario;
}

/** Polls until `check` holds or the time is up; returns whether it held. */
export async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 100) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
