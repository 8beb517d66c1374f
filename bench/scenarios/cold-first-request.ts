import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { buildHttpApiEvent, newApiGatewayRequestId } from "../../local/api-gateway-event.ts";
import type { BenchContext } from "../lib/context.ts";
import { WORKERS } from "../lib/context.ts";
import type { BenchSession } from "../lib/sessions.ts";
import { median, round } from "../lib/stats.ts";
import { startWorker } from "../lib/worker-rpc.ts";
import { probe } from "./cold-start.ts";

/**
 * A cold start as a client meets it: init, then the first requests of the new sandbox. The same layer-mode
 * bundles as the init figures, loaded by a fresh process with Postgres and Redis configured; once the
 * handler is ready it is invoked three times in a row with real API Gateway events. The first invocation
 * also opens the connections, loads the Redis scripts and runs every code path for the first time.
 */
export const FIRST_REQUEST_FUNCTIONS = ["sessions-create", "messages-post", "session-messages", "health"];

export interface FirstRequestFigures {
  reps: number;
  /** Medians, ms: init (process start → handler ready) and each invocation after it. */
  initMs: number;
  invocationsMs: number[];
}

export interface FirstRequestResults {
  invocations: number;
  functions: Record<string, FirstRequestFigures>;
}

interface Built {
  name: string;
  bundle: string;
  env: Record<string, string>;
}

type Request = {
  method: string;
  url: string;
  routeKey: string;
  body?: string;
  path?: Record<string, string>;
};

/** The API Gateway events for function `name`'s first invocations on `session`. */
function requests(name: string, session: BenchSession, n: number): Request[] {
  return Array.from({ length: n }, (_, i): Request => {
    switch (name) {
      case "sessions-create":
        return { method: "POST", url: "/sessions/create", routeKey: "POST /sessions/create", body: "{}" };
      case "messages-post":
        return {
          method: "POST",
          url: "/messages/post",
          routeKey: "POST /messages/post",
          body: JSON.stringify({ session_id: session.id, content: `cold start, post ${i + 1}` }),
        };
      case "session-messages":
        return {
          method: "GET",
          url: `/sessions/${session.id}/messages?limit=50`,
          routeKey: "GET /sessions/{session_id}/messages",
          path: { session_id: session.id },
        };
      case "health":
        return { method: "GET", url: "/health", routeKey: "GET /health" };
      default:
        throw new Error(`no first-request events for ${name}`);
    }
  });
}

function toEvent(r: Request, token: string): APIGatewayProxyEventV2 {
  const body = Buffer.from(r.body ?? "");
  const headers: Record<string, string[]> = { host: ["127.0.0.1"], authorization: [`Bearer ${token}`] };
  if (body.length) {
    headers["content-type"] = ["application/json"];
    headers["content-length"] = [String(body.length)];
  }
  return buildHttpApiEvent(
    { method: r.method, url: r.url, headers, body, sourceIp: "127.0.0.1", protocol: "HTTP/1.1" },
    { routeKey: r.routeKey, pathParameters: r.path ?? {}, requestId: newApiGatewayRequestId() },
  );
}

export async function firstRequestBench(
  ctx: BenchContext,
  built: Built[],
  dir: string,
  opts: { reps: number; invocations: number; nodeOptions: string },
): Promise<FirstRequestResults> {
  const db = await ctx.dbs.create("cold_first");
  const services = {
    DATABASE_URL: db.url,
    REDIS_URL: ctx.redisUrl,
    // the deployed defaults, so the figures include the limiter's round trip
    RATE_LIMIT_PER_TOKEN: "120",
    RATE_LIMIT_PER_IP: "100000",
  };
  // Sessions made by the product itself (a worker running the handlers), one per run.
  const worker = await startWorker("cold-sessions", WORKERS.api, { env: ctx.env(services) });
  let sessions: BenchSession[];
  try {
    sessions = await worker.call<BenchSession[]>("createSessions", {
      n: built.length * opts.reps,
      concurrency: 4,
    });
  } finally {
    await worker.close();
  }
  const samples = new Map<string, { init: number[]; inv: number[][] }>();
  let next = 0;
  for (let rep = 0; rep < opts.reps; rep++) {
    for (const item of built) {
      const session = sessions[next++] as BenchSession;
      const spec = join(dir, `first-request-${item.name}.json`);
      const events = requests(item.name, session, opts.invocations).map((r) => toEvent(r, session.token));
      writeFileSync(spec, JSON.stringify({ name: item.name, events }));
      const env = {
        ...item.env,
        ...services,
        ...(opts.nodeOptions ? { NODE_OPTIONS: opts.nodeOptions } : {}),
      };
      const r = await probe(item.bundle, env, { invocations: spec });
      const bad = r.statuses?.find((s) => s === null || s >= 400);
      if (!r.ok || bad !== undefined)
        throw new Error(`first requests of ${item.name} failed: ${r.error ?? `status ${bad}`}`);
      const s = samples.get(item.name) ?? { init: [], inv: [] };
      s.init.push(r.readyMs as number);
      s.inv.push(r.invocationsMs ?? []);
      samples.set(item.name, s);
    }
  }
  const functions: Record<string, FirstRequestFigures> = {};
  for (const [name, s] of samples) {
    functions[name] = {
      reps: s.init.length,
      initMs: round(median(s.init), 1),
      invocationsMs: Array.from({ length: opts.invocations }, (_, i) =>
        round(median(s.inv.map((x) => x[i] as number)), 2),
      ),
    };
  }
  await db.drop();
  return { invocations: opts.invocations, functions };
}
