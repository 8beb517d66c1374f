/**
 * One "sandbox" of the product: the local runner (every manifest function, real handlers, over HTTP like
 * API Gateway) and the same handlers called directly, with this process's environment (DATABASE_URL,
 * REDIS_URL or not, KAFKA_BROKERS or not). Also runs the outbox relay for the Kafka benchmark.
 */
import { randomUUID } from "node:crypto";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { findFunction } from "../../functions/manifest.ts";
import { closeRedis } from "../../layers/chat/cache/redis-client.ts";
import { getCacheGuard } from "../../layers/chat/chat-runtime.ts";
import { config } from "../../layers/chat/config.ts";
import { closePool, getPool } from "../../layers/chat/db/pool.ts";
import { buildHttpApiEvent, newApiGatewayRequestId } from "../../local/api-gateway-event.ts";
import { createLambdaContext, newLogStreamName } from "../../local/lambda-context.ts";
import type { LogLevel } from "../../local/log.ts";
import { type Runner, startRunner } from "../../local/server.ts";
import { runLoop } from "../lib/closed-loop.ts";
import {
  drainCommitTimes,
  drainExplains,
  explainNext,
  installInstrumentation,
  readCounters,
  recordCommitTimes,
  resetCounters,
} from "../lib/instrument.ts";
import { relayLikeEvents } from "../lib/relay-events.ts";
import { type BenchSession, contentFor, SessionRotation } from "../lib/sessions.ts";
import { serveWorker } from "../lib/worker-rpc.ts";

installInstrumentation();

type Handler = (e: APIGatewayProxyEventV2, c: Context) => Promise<APIGatewayProxyStructuredResultV2>;
let runner: Runner | undefined;
const handlers = new Map<string, Handler>();
const logStreams = new Map<string, string>();

async function handler(name: string): Promise<Handler> {
  let h = handlers.get(name);
  if (!h) {
    const spec = findFunction(name);
    if (!spec) throw new Error(`no function ${name}`);
    const mod = (await import(`../../functions/${spec.handler}.ts`)) as { handler: Handler };
    h = mod.handler;
    handlers.set(name, h);
  }
  return h;
}

/** The event API Gateway (and the runner) would build for this request, and a fresh Lambda context. */
function invocation(
  name: string,
  req: { method: string; url: string; routeKey: string; body?: string; headers: Record<string, string> },
  pathParameters: Record<string, string> = {},
): { event: APIGatewayProxyEventV2; context: Context } {
  const spec = findFunction(name);
  if (!spec) throw new Error(`no function ${name}`);
  const body = Buffer.from(req.body ?? "");
  const headers: Record<string, string[]> = { host: ["127.0.0.1"] };
  for (const [k, v] of Object.entries(req.headers)) headers[k] = [v];
  if (body.length) headers["content-length"] = [String(body.length)];
  const event = buildHttpApiEvent(
    { method: req.method, url: req.url, headers, body, sourceIp: "127.0.0.1", protocol: "HTTP/1.1" },
    { routeKey: req.routeKey, pathParameters, requestId: newApiGatewayRequestId() },
  );
  let stream = logStreams.get(name);
  if (!stream) {
    stream = newLogStreamName();
    logStreams.set(name, stream);
  }
  const context = createLambdaContext(spec, {
    awsRequestId: randomUUID(),
    deadline: Date.now() + spec.timeoutSeconds * 1000,
    logStreamName: stream,
  });
  return { event, context };
}

const runnerLog = (level: LogLevel, message: string, fields?: Record<string, unknown>) => {
  // Per-request info lines would dominate the figures; warnings and errors still show.
  if (level !== "info")
    process.stderr.write(`${level}: ${message} ${fields ? JSON.stringify(fields) : ""}\n`);
};

async function start(): Promise<{ url: string }> {
  runner = await startRunner({ port: 0, schedules: false, log: runnerLog });
  return { url: runner.url };
}

/** Sessions made through the sessions-create handler itself (so the cache is filled as in production). */
async function createSessions(args: { n: number; concurrency: number }): Promise<BenchSession[]> {
  const h = await handler("sessions-create");
  const out: BenchSession[] = [];
  let next = 0;
  const work = async () => {
    while (next < args.n) {
      next++;
      const { event, context } = invocation("sessions-create", {
        method: "POST",
        url: "/sessions/create",
        routeKey: "POST /sessions/create",
        body: JSON.stringify({ user_id: "bench" }),
        headers: { "content-type": "application/json" },
      });
      const res = await h(event, context);
      if (res.statusCode !== 201) throw new Error(`sessions/create answered ${res.statusCode}: ${res.body}`);
      const body = JSON.parse(res.body ?? "{}") as { session: { session_id: string }; token: string };
      out.push({ id: body.session.session_id, token: body.token });
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, work));
  return out;
}

interface DirectArgs {
  concurrency: number;
  durationMs: number;
  maxOps: number;
  warmupMs: number;
  keepSamples?: boolean;
  postsPerSession: number;
  sessions: BenchSession[];
}

/** POST /messages/post by calling the handler directly: the handler's own cost, no HTTP, no runner. */
async function directPost(args: DirectArgs) {
  const h = await handler("messages-post");
  const rotation = new SessionRotation(args.sessions, args.concurrency, args.postsPerSession);
  resetCounters();
  const result = await runLoop(args, async (w, seq) => {
    const s = rotation.next(w);
    const { event, context } = invocation("messages-post", {
      method: "POST",
      url: "/messages/post",
      routeKey: "POST /messages/post",
      body: JSON.stringify({ session_id: s.id, content: contentFor(seq) }),
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${s.token}`,
        "idempotency-key": randomUUID(),
      },
    });
    const res = await h(event, context);
    return res.statusCode;
  });
  return {
    ...result,
    sessionsUsed: rotation.consumed,
    sessionsReused: rotation.reused,
    counters: readCounters(),
    cacheTrusted: getCacheGuard()?.trusted ?? null,
  };
}

interface DirectGetArgs {
  concurrency: number;
  durationMs: number;
  maxOps: number;
  warmupMs: number;
  keepSamples?: boolean;
  name: string;
  routeKey: string;
  /** With `{session_id}`; the query string follows `?`. */
  path: string;
  sessions: BenchSession[];
}

/** A GET handler (e.g. session-messages) called directly, round-robin over sessions. */
async function directGet(args: DirectGetArgs) {
  const h = await handler(args.name);
  resetCounters();
  const result = await runLoop(args, async (_w, seq) => {
    const s = args.sessions[seq % args.sessions.length] as BenchSession;
    const { event, context } = invocation(
      args.name,
      {
        method: "GET",
        url: args.path.replace("{session_id}", s.id),
        routeKey: args.routeKey,
        headers: { authorization: `Bearer ${s.token}` },
      },
      { session_id: s.id },
    );
    const res = await h(event, context);
    return res.statusCode;
  });
  return { ...result, counters: readCounters() };
}

/** The outbox relay as the outbox-relay function runs it, against this worker's database and brokers. */
async function relay(args: { batchSize: number; timeBudgetMs: number }) {
  const cfg = config();
  const { publishEvents, producerSettings } = await import("../../layers/chat/events/kafka-runtime.ts");
  const { getProducer } = await import("../../layers/chat/events/kafka-producer.ts");
  const { relayOutbox } = await import("../../layers/chat/events/outbox-relay.ts");
  // A warm relay (Lambda reuses the producer across runs): connect before timing.
  await getProducer(await producerSettings(cfg));
  const pool = await getPool();
  resetCounters();
  let publishMs = 0;
  const started = performance.now();
  const result = await relayOutbox(
    pool,
    async (events, timeoutMs) => {
      const t = performance.now();
      await publishEvents(cfg, events, timeoutMs);
      publishMs += performance.now() - t;
    },
    { batchSize: args.batchSize, batchBytes: cfg.KAFKA_MAX_BATCH_BYTES, timeBudgetMs: args.timeBudgetMs },
  );
  const elapsedMs = performance.now() - started;
  return { ...result, elapsedMs, publishMs, counters: readCounters() };
}

let prepared: import("../../layers/chat/events/cloudevents.ts").CloudEvent[] = [];

/**
 * Builds one batch of the producer-alone run's events (before its CPU is counted), shaped like the relay's. One
 * batch, published again and again: holding all 30,000 events would make the run measure the garbage collector
 * (tens of MB more live heap doubled the CPU per event), which the relay, holding a batch or two, does not pay.
 */
async function prepareEvents(args: { events: number }) {
  const { chatEvent } = await import("../../layers/chat/events/cloudevents.ts");
  prepared = relayLikeEvents(chatEvent, args.events);
  return { events: prepared.length };
}

/**
 * The relay's publishes without Postgres: the prepared batch published `batches` times, one publish after the
 * other, through the same publishEvents (each serializes and encodes it anew), warm producer. What the relay
 * would do if fetching and marking cost nothing.
 */
async function publishOnly(args: { batches: number }) {
  const cfg = config();
  const { publishEvents, producerSettings } = await import("../../layers/chat/events/kafka-runtime.ts");
  const { getProducer } = await import("../../layers/chat/events/kafka-producer.ts");
  await getProducer(await producerSettings(cfg));
  const started = performance.now();
  for (let i = 0; i < args.batches; i++) await publishEvents(cfg, prepared, 30_000);
  return { published: prepared.length * args.batches, elapsedMs: performance.now() - started };
}

serveWorker(
  {
    start,
    createSessions,
    directPost,
    directGet,
    relay,
    prepareEvents,
    publishOnly,
    counters: () => readCounters(),
    resetCounters: () => resetCounters(),
    cacheState: () => ({ trusted: getCacheGuard()?.trusted ?? null }),
    recordCommits: (on: boolean) => recordCommitTimes(on),
    drainCommits: () => drainCommitTimes(),
    explainNext: (n: number) => explainNext(n),
    drainExplains: () => drainExplains(),
  },
  async () => {
    await runner?.close();
    const { disconnectProducer } = await import("../../layers/chat/events/kafka-producer.ts");
    await disconnectProducer().catch(() => {});
    await closeRedis();
    await closePool();
  },
);
