import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { Metrics } from "@aws-lambda-powertools/metrics";
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  Context,
  MSKEvent,
} from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type FunctionSpec, functions, httpFunctions } from "../../functions/manifest.ts";
import { rowCounts } from "../helpers/chat-fixture.ts";
import { lambdaContext } from "../helpers/lambda-events.ts";
import { assertMatchesOpenApi, componentErrors } from "../helpers/openapi-validator.ts";
import { RUNNER_REDIS_URL, resetRuntime } from "../helpers/runner-fixture.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * The committed sample events (tests/fixtures/events/<function-name>.json, also what `sam local invoke -e`
 * uses) fed straight to each handler, so they cannot rot: a route sample must still be an API Gateway v2
 * event of its route and get a proper answer (session-scoped samples name ids that do not exist: 401/404
 * problem+json, never a 5xx, changing nothing); the scheduled samples run their job; the MSK sample is
 * applied to the projection once and only once.
 */
// SAMPLE_EVENTS_DIR: check another folder of samples (e.g. before committing new ones).
const DIR = process.env.SAMPLE_EVENTS_DIR
  ? pathToFileURL(`${process.env.SAMPLE_EVENTS_DIR.replace(/\/?$/, "/")}`)
  : new URL("../fixtures/events/", import.meta.url);
const fileOf = (name: string) => new URL(`${name}.json`, DIR);

function loadSample<T>(name: string): T {
  const file = fileOf(name);
  if (!existsSync(file)) {
    throw new Error(
      `missing sample event tests/fixtures/events/${name}.json for manifest function "${name}" ` +
        `(present: ${existsSync(DIR) ? readdirSync(DIR).join(", ") || "none" : "no folder"})`,
    );
  }
  return JSON.parse(readFileSync(file, "utf8")) as T;
}

type Handler = (event: unknown, context: Context) => Promise<unknown>;
async function handlerOf(fn: FunctionSpec): Promise<Handler> {
  const mod = (await import(`../../functions/${fn.handler}.ts`)) as { handler: Handler };
  return mod.handler;
}

const ENV_KEYS = [
  "DATABASE_URL",
  "REDIS_URL",
  "POWERTOOLS_LOG_LEVEL",
  "POWERTOOLS_METRICS_DISABLED",
  "RATE_LIMIT_PER_IP",
  "RATE_LIMIT_PER_TOKEN",
  "HEALTH_URL",
  "KAFKA_BROKERS",
  "MSK_CLUSTER_ARN",
];
const saved = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
let db: TestDatabase;
let healthServer: Server;

beforeAll(async () => {
  db = await createTestDatabase(5);
  // a stand-in for the deployed /health that health-canary calls
  healthServer = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ status: "ok" }));
  });
  await new Promise<void>((r) => healthServer.listen(0, "127.0.0.1", r));
  const { port } = healthServer.address() as AddressInfo;
  Object.assign(process.env, {
    DATABASE_URL: db.url,
    REDIS_URL: RUNNER_REDIS_URL,
    POWERTOOLS_LOG_LEVEL: "SILENT",
    POWERTOOLS_METRICS_DISABLED: "true",
    RATE_LIMIT_PER_IP: "0",
    RATE_LIMIT_PER_TOKEN: "0",
    HEALTH_URL: `http://127.0.0.1:${port}/health`,
  });
  delete process.env.KAFKA_BROKERS;
  delete process.env.MSK_CLUSTER_ARN;
  await resetRuntime();
});
afterAll(async () => {
  await resetRuntime();
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await new Promise((r) => healthServer?.close(r));
  await db?.drop();
});

const OPEN_ROUTES: Record<string, number> = { "sessions-create": 201, health: 200, openapi: 200 };

describe("sample events of the HTTP functions", () => {
  for (const fn of httpFunctions) {
    it(`${fn.name}: its sample is an API Gateway v2 event of ${fn.route.method} ${fn.route.path}`, () => {
      const event = loadSample<APIGatewayProxyEventV2>(fn.name);
      expect(event.version).toBe("2.0");
      expect(event.routeKey).toBe(`${fn.route.method} ${fn.route.path}`);
      expect(event.requestContext?.http?.method).toBe(fn.route.method);
      const pattern = new RegExp(`^${fn.route.path.replace(/\{(\w+)\}/g, "[^/]+")}$`);
      expect(event.rawPath).toMatch(pattern);
      expect(event.requestContext.http.path).toBe(event.rawPath);
      for (const name of [...fn.route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string))
        expect(event.pathParameters?.[name], `pathParameters.${name}`).toBeTruthy();
      expect(event.requestContext.requestId).toBeTruthy();
    });

    const expected = OPEN_ROUTES[fn.name];
    it(
      expected
        ? `${fn.name}: its sample gets ${expected} from the handler`
        : `${fn.name}: its sample (ids that do not exist) gets 401 or 404 problem+json, not a 5xx, and changes nothing`,
      async () => {
        const event = loadSample<APIGatewayProxyEventV2>(fn.name);
        const handler = await handlerOf(fn);
        const before = await rowCounts(db.pool);
        const res = (await handler(event, lambdaContext(fn.name))) as APIGatewayProxyStructuredResultV2;
        const headers = Object.fromEntries(
          Object.entries(res.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]),
        );
        const body = res.body ? JSON.parse(res.body) : undefined;
        expect(headers["x-request-id"]).toBe(event.requestContext.requestId);
        if (expected) {
          expect(res.statusCode, res.body).toBe(expected);
        } else {
          expect([401, 404], res.body).toContain(res.statusCode);
          expect(headers["content-type"]).toBe("application/problem+json");
          expect(componentErrors("Problem", body)).toBeNull();
          expect(body.code).toMatch(/^(unauthorized|session_not_found)$/);
          expect(await rowCounts(db.pool)).toEqual(before);
        }
        assertMatchesOpenApi(fn.route.method, fn.route.path, res.statusCode as number, headers, body);
      },
    );
  }
});

describe("sample events of the scheduled functions", () => {
  const scheduled = functions.filter((f) => f.schedule);

  for (const fn of scheduled) {
    it(`${fn.name}: its sample is an EventBridge scheduled event`, () => {
      const event = loadSample<Record<string, unknown>>(fn.name);
      expect(event["detail-type"]).toBe("Scheduled Event");
      expect(["aws.scheduler", "aws.events"]).toContain(event.source);
      expect(event.id).toBeTruthy();
      expect(event.time).toBeTruthy();
    });
  }

  it("outbox-relay: its sample runs the relay, which skips with Kafka off", async () => {
    const handler = await handlerOf(functions.find((f) => f.name === "outbox-relay") as FunctionSpec);
    const result = await handler(loadSample("outbox-relay"), lambdaContext("outbox-relay"));
    expect(result).toEqual({ skipped: true, published: 0, batches: 0, kafka: "off" });
  });

  it("maintenance: its sample runs the housekeeping and purges no live session", async () => {
    const handler = await handlerOf(functions.find((f) => f.name === "maintenance") as FunctionSpec);
    const before = await rowCounts(db.pool);
    const result = await handler(loadSample("maintenance"), lambdaContext("maintenance"));
    expect(result).toEqual({
      outboxPruned: expect.any(Number),
      idempotencyExpired: expect.any(Number),
      consumedEventsPruned: expect.any(Number),
      erasedActivityPruned: expect.any(Number),
      sessionsPurged: 0,
      sessionsFailed: 0,
      cacheInvalidationsDrained: true,
    });
    expect((await rowCounts(db.pool)).sessions).toBe(before.sessions);
  });

  it("health-canary: its sample probes HEALTH_URL and reports it healthy", async () => {
    const handler = await handlerOf(functions.find((f) => f.name === "health-canary") as FunctionSpec);
    const result = await handler(loadSample("health-canary"), lambdaContext("health-canary"));
    expect(result).toMatchObject({ ok: true, status: 200, health: "ok", url: process.env.HEALTH_URL });
  });
});

describe("sample event of the Kafka consumer", () => {
  it("events-consumer: its sample is an MSK event of the chat topic whose records are chat CloudEvents", () => {
    const event = loadSample<MSKEvent>("events-consumer");
    expect(event.eventSource).toBe("aws:kafka");
    const records = Object.values(event.records ?? {}).flat();
    expect(records.length).toBeGreaterThan(0);
    const topic = functions.find((f) => f.name === "events-consumer")?.kafkaTopic;
    for (const r of records) {
      expect(r.topic).toBe(topic);
      const value = JSON.parse(Buffer.from(r.value, "base64").toString("utf8"));
      expect(value).toMatchObject({ specversion: "1.0", type: expect.stringMatching(/^chat\./) });
    }
  });

  it("events-consumer: its sample is applied to session_activity once; a redelivery applies nothing", async () => {
    const event = loadSample<MSKEvent>("events-consumer");
    const handler = await handlerOf(functions.find((f) => f.name === "events-consumer") as FunctionSpec);
    const records = Object.values(event.records ?? {}).flat();
    const subjects = [
      ...new Set(
        records.map((r) => JSON.parse(Buffer.from(r.value, "base64").toString("utf8")).subject as string),
      ),
    ];
    const first = (await handler(event, lambdaContext("events-consumer"))) as Record<string, unknown>;
    expect(first).toEqual({ records: records.length, applied: records.length, duplicates: 0, rejected: [] });
    const activity = async () =>
      (
        await db.pool.query("SELECT * FROM session_activity WHERE session_id = ANY($1) ORDER BY session_id", [
          subjects,
        ])
      ).rows;
    const applied = await activity();
    expect(applied.map((r) => r.session_id).sort()).toEqual([...subjects].sort());

    const again = (await handler(event, lambdaContext("events-consumer"))) as Record<string, unknown>;
    expect(again).toEqual({ records: records.length, applied: 0, duplicates: records.length, rejected: [] });
    expect(await activity()).toEqual(applied);
  });
});

describe("records the Kafka consumer cannot apply", () => {
  it("events-consumer: skips and reports each record that is not a valid chat event, applies the rest, and counts them", async () => {
    const sample = loadSample<MSKEvent>("events-consumer");
    const [template] = Object.values(sample.records).flat();
    if (!template) throw new Error("empty sample");
    const valid = JSON.parse(Buffer.from(template.value, "base64").toString("utf8"));
    const sessionId = "0b9e2c3a-58f4-4c1e-9d7a-3f2e1d0c4b5a";
    const event = (i: number, patch: Record<string, unknown>) => ({
      ...valid,
      id: `6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a${(10 + i).toString()}`,
      subject: sessionId,
      data: { ...valid.data, session_id: sessionId },
      ...patch,
    });
    const values = [
      JSON.stringify(event(0, { time: "2026-11-27T25:61:00Z" })), // Postgres refused it: the batch failed for good
      JSON.stringify(event(1, { time: "0000-01-01T00:00:00Z" })), // no year 0 in Postgres either
      JSON.stringify(event(5, { time: "2026-11-27T10:00:00+20:00" })), // nor an offset past ±15:59
      JSON.stringify(event(2, { dataversion: "2" })), // a newer schema
      JSON.stringify(event(3, { type: "chat.session.renamed" })), // a newer event type
      "not json",
      JSON.stringify(event(4, {})), // valid: applied
    ];
    const records = values.map((v, i) => ({
      ...template,
      partition: i % 2,
      offset: 100 + i,
      value: Buffer.from(v).toString("base64"),
    }));
    const batch: MSKEvent = {
      ...sample,
      records: {
        "chat-messages-0": records.filter((r) => r.partition === 0),
        "chat-messages-1": records.filter((r) => r.partition === 1),
      },
    };
    const handler = await handlerOf(functions.find((f) => f.name === "events-consumer") as FunctionSpec);
    const addMetric = vi.spyOn(Metrics.prototype, "addMetric");
    const result = (await handler(batch, lambdaContext("events-consumer"))) as Record<string, unknown>;
    expect(result).toMatchObject({ records: 7, applied: 1, duplicates: 0 });
    const rejected = result.rejected as {
      offset: number;
      reason: string;
      id?: string;
      type?: string;
      dataversion?: string;
    }[];
    expect(rejected.sort((a, b) => a.offset - b.offset)).toEqual([
      expect.objectContaining({ offset: 100, id: event(0, {}).id, reason: expect.stringContaining("time") }),
      expect.objectContaining({ offset: 101, id: event(1, {}).id, reason: expect.stringContaining("time") }),
      expect.objectContaining({ offset: 102, id: event(5, {}).id, reason: expect.stringContaining("time") }),
      expect.objectContaining({
        offset: 103,
        dataversion: "2",
        reason: expect.stringContaining("dataversion"),
      }),
      expect.objectContaining({
        offset: 104,
        type: "chat.session.renamed",
        reason: expect.stringContaining("type"),
      }),
      { partition: "chat-messages-1", offset: 105, reason: "not JSON" },
    ]);
    const row = await db.pool.query("SELECT * FROM session_activity WHERE session_id = $1", [sessionId]);
    expect(row.rows).toHaveLength(1);
    // the count reaches CloudWatch as an EMF metric, which the stack's RejectedEvents alarm watches
    expect(addMetric.mock.calls.filter((c) => c[0] === "RejectedEvents").map((c) => c[2])).toEqual([6]);
    addMetric.mockRestore();
  });
});

describe("the sample events folder", () => {
  it("has one sample per manifest function, and none for a function that does not exist", () => {
    const present = existsSync(DIR)
      ? readdirSync(DIR)
          .filter((f) => f.endsWith(".json"))
          .map((f) => f.replace(/\.json$/, ""))
      : [];
    const names = functions.map((f) => f.name);
    expect(
      names.filter((n) => !present.includes(n)).map((n) => `missing tests/fixtures/events/${n}.json`),
    ).toEqual([]);
    expect(
      present.filter((n) => !names.includes(n)).map((n) => `no manifest function for ${n}.json`),
    ).toEqual([]);
  });
});
