import { expect } from "vitest";
import { closeRedis } from "../../layers/chat/cache/redis-client.ts";
import { resetChatRuntime } from "../../layers/chat/chat-runtime.ts";
import { resetConfig } from "../../layers/chat/config.ts";
import { closePool } from "../../layers/chat/db/pool.ts";
import type { LogLevel } from "../../local/log.ts";
import { type Runner, startRunner } from "../../local/server.ts";
import { type FreezingProxy, freezingProxy } from "./freezing-proxy.ts";
import { assertResponseMatchesOpenApi } from "./openapi-validator.ts";
import { createTestDatabase, type TestDatabase } from "./test-database.ts";

/**
 * The real local runner (every manifest function, real handlers) on a free port, wired to this test file's
 * own database and the shared Redis. Config, pool, Redis client and chat service are per-process singletons,
 * so one runner per file: `reconfigure` swaps the environment (and everything built from it) in place.
 */
export const RUNNER_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export interface ApiResponse<T = unknown> {
  status: number;
  headers: Headers;
  /** The raw body text ("" when there is none). */
  text: string;
  /** The parsed JSON body, or undefined when the body is empty. */
  body: T;
  contentType: string | null;
}

export interface CallOptions {
  /** Sent as JSON (content-type application/json) unless `rawBody` is given. */
  json?: unknown;
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Validate the response against docs/openapi.json (default true). */
  openapi?: boolean;
}

export interface RunnerFixture {
  runner: Runner;
  url: string;
  db: TestDatabase;
  /** Lines the runner logged (errors of handlers among them), for failure messages. */
  logs: { level: LogLevel; message: string; fields?: unknown }[];
  /** One HTTP request to the runner; checks x-request-id and (by default) the OpenAPI document. */
  call<T = Record<string, unknown>>(
    method: string,
    path: string,
    opts?: CallOptions,
  ): Promise<ApiResponse<T>>;
  /** Closes the runner and starts a new one with these environment overrides (on top of the base env). */
  reconfigure(env: Record<string, string>): Promise<void>;
  close(): Promise<void>;
}

export interface RunnerFixtureOptions {
  /** Extra environment for the functions (e.g. SESSION_LOCK_TIMEOUT_MS). */
  env?: Record<string, string>;
  /** Environment that needs the runner's URL (e.g. HEALTH_URL); applied right after it listens. */
  envAfterStart?: (url: string) => Record<string, string>;
}

const touched = new Map<string, string | undefined>();

function setEnv(env: Record<string, string>) {
  for (const [k, v] of Object.entries(env)) {
    if (!touched.has(k)) touched.set(k, process.env[k]);
    process.env[k] = v;
  }
}

function restoreEnv() {
  for (const [k, v] of touched) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  touched.clear();
}

/** Drops every process-wide singleton built from the environment, so the next request reads it afresh. */
export async function resetRuntime(): Promise<void> {
  resetChatRuntime();
  await closeRedis();
  await closePool();
  resetConfig();
}

export async function startRunnerFixture(opts: RunnerFixtureOptions = {}): Promise<RunnerFixture> {
  const db = await createTestDatabase(10);
  const logs: RunnerFixture["logs"] = [];
  const baseEnv: Record<string, string> = {
    DATABASE_URL: db.url,
    REDIS_URL: RUNNER_REDIS_URL,
    LOCAL_SCHEDULES: "off",
    POWERTOOLS_LOG_LEVEL: "SILENT",
    POWERTOOLS_METRICS_DISABLED: "true",
    AWS_REGION: "us-east-1",
    // Every e2e file calls from 127.0.0.1 through the shared Redis: one per-IP bucket for all of them.
    // Rate limiting has tests of its own; here it would only make the contract tests flaky.
    RATE_LIMIT_PER_IP: "0",
    RATE_LIMIT_PER_TOKEN: "0",
    // As in chat-fixture.ts: these tests check what the shared Redis serves (x-cache: hit, /health's redis ok), not
    // timeouts; the product's 50 ms fires whenever CI's loaded CPU stalls this process's event loop that long.
    REDIS_COMMAND_TIMEOUT_MS: "1000",
    ...opts.env,
  };
  // Kafka stays off: nothing in the inherited environment may turn it on.
  for (const k of ["KAFKA_BROKERS", "MSK_CLUSTER_ARN"]) {
    if (!touched.has(k)) touched.set(k, process.env[k]);
    delete process.env[k];
  }

  let runner: Runner;
  const start = async (env: Record<string, string>) => {
    setEnv(env);
    await resetRuntime();
    runner = await startRunner({
      port: 0,
      schedules: false,
      log: (level, message, fields) => {
        logs.push({ level, message, fields });
        if (process.env.DEBUG_RUNNER) console.log(level, message, fields ?? "");
      },
    });
    if (opts.envAfterStart) {
      setEnv(opts.envAfterStart(runner.url));
      resetConfig();
    }
  };
  await start(baseEnv);

  const fixture: RunnerFixture = {
    get runner() {
      return runner;
    },
    get url() {
      return runner.url;
    },
    db,
    logs,
    async call<T>(method: string, path: string, o: CallOptions = {}) {
      const headers: Record<string, string> = { ...o.headers };
      let body: string | Buffer | undefined;
      if (o.rawBody !== undefined) body = o.rawBody;
      else if (o.json !== undefined) {
        body = JSON.stringify(o.json);
        headers["content-type"] ??= "application/json";
      }
      if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
      const res = await fetch(`${runner.url}${path}`, { method, headers, body });
      const text = await res.text();
      const contentType = res.headers.get("content-type");
      let parsed: unknown;
      if (text && /json/.test(contentType ?? "")) parsed = JSON.parse(text);
      const out: ApiResponse<T> = {
        status: res.status,
        headers: res.headers,
        text,
        body: parsed as T,
        contentType,
      };
      // The contract: every response carries x-request-id.
      expect(res.headers.get("x-request-id"), `${method} ${path}: x-request-id`).toBeTruthy();
      if (o.openapi !== false) assertResponseMatchesOpenApi(method, path, out);
      return out;
    },
    async reconfigure(env) {
      await runner.close();
      await start({ ...baseEnv, ...env });
    },
    async close() {
      await runner?.close();
      await resetRuntime();
      restoreEnv();
      await db.drop();
    },
  };
  return fixture;
}

/** A session made over HTTP: its id and token. */
export async function createSession(
  fx: RunnerFixture,
  body: Record<string, unknown> = {},
): Promise<{ sessionId: string; token: string; welcomeId: string }> {
  const res = await fx.call<{
    session: { session_id: string };
    token: string;
    messages: { message_id: string }[];
  }>("POST", "/sessions/create", { json: body });
  expect(res.status, res.text).toBe(201);
  return {
    sessionId: res.body.session.session_id,
    token: res.body.token,
    welcomeId: res.body.messages[0]?.message_id as string,
  };
}

/** Posts a user message over HTTP; returns the user message and reply ids. */
export async function postMessage(
  fx: RunnerFixture,
  session: { sessionId: string; token: string },
  content: string,
): Promise<{ messageId: string; replyId: string }> {
  const res = await fx.call<{ message: { message_id: string }; reply: { message_id: string } }>(
    "POST",
    "/messages/post",
    { json: { session_id: session.sessionId, content }, token: session.token },
  );
  expect(res.status, res.text).toBe(201);
  return { messageId: res.body.message.message_id, replyId: res.body.reply.message_id };
}

/** A local runner whose Postgres is a private database reached through a freezing proxy; `close` ends all three. */
export interface RunnerBehindProxy {
  db: TestDatabase;
  proxy: FreezingProxy;
  fx: RunnerFixture;
  close(): Promise<void>;
}

export async function runnerBehindFreezingProxy(env: Record<string, string>): Promise<RunnerBehindProxy> {
  const db = await createTestDatabase(2);
  const proxy = await freezingProxy(new URL(db.url)).catch(async (err) => {
    await db.drop();
    throw err;
  });
  const fx = await startRunnerFixture({ env: { DATABASE_URL: proxy.url, ...env } }).catch(async (err) => {
    await proxy.close();
    await db.drop();
    throw err;
  });
  return {
    db,
    proxy,
    fx,
    close: async () => {
      await fx.close();
      await proxy.close();
      await db.drop();
    },
  };
}
