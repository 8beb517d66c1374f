// `npm start`: the whole backend on one port, with an embedded Postgres unless DATABASE_URL is set.
import { relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { functions } from "../functions/manifest.ts";
import { config, resetConfig } from "../layers/chat/config.ts";
import { migrate } from "../layers/chat/db/migrate.ts";
import { closePool } from "../layers/chat/db/pool.ts";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "./embedded-postgres.ts";
import { type KafkaBridge, startKafkaBridge } from "./kafka-bridge.ts";
import { consoleLog } from "./log.ts";
import { type Runner, startRunner } from "./server.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const env = process.env;
const log = consoleLog;

function portFrom(name: string, fallback: number | undefined): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`${name} must be a port number, got ${raw}`);
  return port;
}

let embedded: EmbeddedPostgres | undefined;
let runner: Runner | undefined;
let kafka: KafkaBridge | undefined;
let stopping = false;

async function shutdown(reason: string, failed = false): Promise<never> {
  if (stopping) {
    log("warn", `${reason} again: exiting now`);
    process.exit(1); // embedded-postgres's exit hook still sends Postgres a SIGINT
  }
  stopping = true;
  log("info", `${reason}: stopping`);
  let code = failed ? 1 : 0;
  const step = async (what: string, fn: () => Promise<unknown> | undefined) => {
    try {
      await fn();
    } catch (err) {
      code = 1;
      log("error", `stopping ${what} failed: ${String(err)}`);
    }
  };
  // Inbound first (Kafka, HTTP, schedules), then what the handlers use.
  await step("kafka bridge", () => kafka?.stop());
  await step("runner", () => runner?.close());
  await step("pool", () => closePool());
  await step("embedded postgres", () => embedded?.stop());
  process.exit(code);
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
  process.on(signal, () => void shutdown(signal));

async function main(): Promise<void> {
  const port = portFrom("PORT", 8000);
  let postgres: string;
  if (env.DATABASE_URL) {
    postgres = "external";
  } else {
    const dataDir = resolve(REPO, env.LOCAL_PG_DIR || ".local-pg");
    embedded = await startEmbeddedPostgres({ dataDir, port: portFrom("LOCAL_PG_PORT", undefined), log });
    env.DATABASE_URL = embedded.url;
    const shown = relative(REPO, dataDir).startsWith("..") ? dataDir : relative(REPO, dataDir);
    postgres = `embedded (127.0.0.1:${embedded.port}, data in ${shown})`;
  }
  resetConfig(); // the environment changed after any earlier read
  const applied = await migrate(env.DATABASE_URL);
  if (applied.length > 0) log("info", `migrations applied: ${applied.join(", ")}`);
  if (stopping) return;

  runner = await startRunner({ port, host: env.HOST || "127.0.0.1", log });
  const cfg = config();
  if (cfg.KAFKA_BROKERS.length > 0) {
    const r = runner;
    kafka = await startKafkaBridge({
      brokers: cfg.KAFKA_BROKERS,
      functions,
      invoke: (name, payload) => r.invoke(name, payload),
      ssl: cfg.KAFKA_SSL,
      log,
    });
  }
  const schedules = env.LOCAL_SCHEDULES === "off" ? "off" : "on";
  console.log(
    [
      `chat backend local runner listening on ${runner.url}`,
      `  postgres:  ${postgres}`,
      `  redis:     ${cfg.REDIS_URL ? "on" : "off"}`,
      `  kafka:     ${kafka ? `on (${cfg.KAFKA_BROKERS.join(",")})` : "off"}`,
      `  schedules: ${schedules}`,
      `  Lambda Invoke API: ${runner.url}/2015-03-31/functions/{name}/invocations`,
    ].join("\n"),
  );
}

main().catch(async (err: unknown) => {
  log(
    "error",
    `local runner failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
  );
  await shutdown("start-up failure", true).catch(() => process.exit(1));
});
