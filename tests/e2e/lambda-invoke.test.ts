import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { InvokeCommand, LambdaClient, ResourceNotFoundException } from "@aws-sdk/client-lambda";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHAT_TOPIC, type FunctionSpec, functions, httpFunctions } from "../../functions/manifest.ts";
import { type CloudEvent, toKafkaRecord } from "../../layers/chat/events/cloudevents.ts";
import { toMskEvent } from "../../local/msk-event.ts";
import { scheduledEvent } from "../../local/schedules.ts";
import { httpEvent } from "../helpers/lambda-events.ts";
import { assertMatchesOpenApi } from "../helpers/openapi-validator.ts";
import {
  createSession,
  postMessage,
  type RunnerFixture,
  startRunnerFixture,
} from "../helpers/runner-fixture.ts";

/**
 * Every function of the manifest, invoked by name through the runner's Lambda Invoke API with
 * @aws-sdk/client-lambda, as a deployed caller (or the AWS console) would: HTTP functions with API Gateway
 * v2 events, the scheduled ones with EventBridge Scheduler's payload, the consumer with an MSK event.
 */
const SAMPLES = new URL("../fixtures/events/", import.meta.url);
const sampleFile = (name: string) => new URL(`${name}.json`, SAMPLES);
const sample = <T>(name: string): T | undefined =>
  existsSync(sampleFile(name)) ? (JSON.parse(readFileSync(sampleFile(name), "utf8")) as T) : undefined;

let fx: RunnerFixture;
let lambda: LambdaClient;
let s: { sessionId: string; token: string; welcomeId: string };
let turn: { messageId: string; replyId: string };
let doomed: { sessionId: string; token: string };
const covered = new Set<string>();

beforeAll(async () => {
  fx = await startRunnerFixture({ envAfterStart: (url) => ({ HEALTH_URL: `${url}/health` }) });
  lambda = new LambdaClient({
    endpoint: fx.url,
    region: "us-east-1",
    credentials: { accessKeyId: "x", secretAccessKey: "x" },
    maxAttempts: 1,
  });
  s = await createSession(fx);
  turn = await postMessage(fx, s, "Hello!");
  doomed = await createSession(fx);
});
afterAll(async () => {
  lambda?.destroy();
  await fx?.close();
});

async function invoke<T = unknown>(name: string, payload: unknown) {
  covered.add(name);
  const out = await lambda.send(
    new InvokeCommand({ FunctionName: name, Payload: new TextEncoder().encode(JSON.stringify(payload)) }),
  );
  const text = new TextDecoder().decode(out.Payload);
  expect(out.StatusCode, `${name}: ${text}`).toBe(200);
  expect(out.FunctionError, `${name}: ${text}`).toBeUndefined();
  expect(out.ExecutedVersion).toBe("$LATEST");
  return JSON.parse(text) as T;
}

const auth = () => ({ authorization: `Bearer ${s.token}` });

/** A v2 event for each HTTP function against the real session, and the status it must get. */
const realEvents: Record<string, () => { event: APIGatewayProxyEventV2; status: number }> = {
  "sessions-create": () => ({
    event: httpEvent("POST", "/sessions/create", { body: { user_id: "via-invoke" } }),
    status: 201,
  }),
  "session-get": () => ({
    event: httpEvent("GET", `/sessions/${s.sessionId}`, { headers: auth() }),
    status: 200,
  }),
  "session-messages": () => ({
    event: httpEvent("GET", `/sessions/${s.sessionId}/messages?limit=2`, { headers: auth() }),
    status: 200,
  }),
  "session-suggestions": () => ({
    event: httpEvent("GET", `/sessions/${s.sessionId}/suggestions`, { headers: auth() }),
    status: 200,
  }),
  "messages-post": () => ({
    event: httpEvent("POST", "/messages/post", {
      body: { session_id: s.sessionId, content: "via invoke" },
      headers: auth(),
    }),
    status: 201,
  }),
  "messages-edit": () => ({
    event: httpEvent("PUT", "/messages/edit", {
      body: { session_id: s.sessionId, message_id: turn.messageId, content: "edited via invoke" },
      headers: auth(),
    }),
    status: 200,
  }),
  "messages-delete": () => ({
    event: httpEvent("DELETE", "/messages/delete", {
      body: { session_id: s.sessionId, message_id: turn.replyId },
      headers: auth(),
    }),
    status: 200,
  }),
  "session-erase": () => ({
    event: httpEvent("DELETE", `/sessions/${doomed.sessionId}`, {
      headers: { authorization: `Bearer ${doomed.token}` },
    }),
    status: 204,
  }),
  health: () => ({ event: httpEvent("GET", "/health"), status: 200 }),
  openapi: () => ({ event: httpEvent("GET", "/openapi.json"), status: 200 }),
};

function checkHttpResult(
  fn: FunctionSpec & { route: { method: string; path: string } },
  res: APIGatewayProxyStructuredResultV2,
) {
  const headers = Object.fromEntries(
    Object.entries(res.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]),
  );
  expect(headers["x-request-id"], `${fn.name}: x-request-id`).toBeTruthy();
  const body = res.body ? JSON.parse(res.body) : undefined;
  assertMatchesOpenApi(fn.route.method, fn.route.path, res.statusCode as number, headers, body);
  return { headers, body };
}

describe("HTTP functions through the Invoke API", () => {
  it("has a v2 event for every HTTP function of the manifest", () => {
    expect(Object.keys(realEvents).sort()).toEqual(httpFunctions.map((f) => f.name).sort());
  });

  for (const fn of httpFunctions) {
    it(`${fn.name}: a v2 event for a real session gets the success status and a documented body`, async () => {
      const make = realEvents[fn.name];
      if (!make) throw new Error(`no event for ${fn.name}`);
      const { event, status } = make();
      const res = await invoke<APIGatewayProxyStructuredResultV2>(fn.name, event);
      expect(res.statusCode, `${fn.name}: ${res.body}`).toBe(status);
      const { headers } = checkHttpResult(fn, res);
      // a 204 is no content: no body (not even "null") and no media type, as the function returns it
      if (status === 204) expect([res.body, headers["content-type"]]).toEqual([undefined, undefined]);
    });
  }

  it("the invoked turn is stored and visible over HTTP (the invocations ran against the same database)", async () => {
    const page = await fx.call<{ messages: { content: string }[] }>(
      "GET",
      `/sessions/${s.sessionId}/messages`,
      {
        token: s.token,
      },
    );
    const contents = page.body.messages.map((m) => m.content);
    expect(contents).toContain("via invoke");
    expect(contents).toContain("edited via invoke");
    const erased = await fx.call("GET", `/sessions/${doomed.sessionId}`, { token: doomed.token });
    expect(erased.status).toBe(401);
  });

  for (const fn of httpFunctions) {
    const event = sample<APIGatewayProxyEventV2>(fn.name);
    it.runIf(event !== undefined)(
      `${fn.name}: its committed sample event is answered without a 5xx`,
      async () => {
        const res = await invoke<APIGatewayProxyStructuredResultV2>(fn.name, event);
        const expected = ["sessions-create", "health", "openapi"].includes(fn.name)
          ? [fn.name === "sessions-create" ? 201 : 200]
          : [401, 404];
        expect(expected, `${fn.name}: ${res.body}`).toContain(res.statusCode);
        checkHttpResult(fn, res);
      },
    );
  }
});

describe("the $default route's function through the Invoke API", () => {
  it("route-not-found answers its sample event 404 route_not_found, and a known path's other method 405", async () => {
    const event = sample<APIGatewayProxyEventV2>("route-not-found");
    if (!event) throw new Error("no sample event for route-not-found");
    const notFound = await invoke<APIGatewayProxyStructuredResultV2>("route-not-found", event);
    expect(notFound.statusCode).toBe(404);
    expect(JSON.parse(notFound.body ?? "{}")).toMatchObject({ code: "route_not_found", status: 404 });
    const wrongMethod = structuredClone(event);
    wrongMethod.rawPath = "/messages/post";
    wrongMethod.requestContext.http = {
      ...wrongMethod.requestContext.http,
      method: "GET",
      path: "/messages/post",
    };
    const notAllowed = await invoke<APIGatewayProxyStructuredResultV2>("route-not-found", wrongMethod);
    expect(notAllowed.statusCode).toBe(405);
    expect(notAllowed.headers?.allow).toBe("POST");
    expect(notAllowed.headers?.["content-type"]).toBe("application/problem+json");
  });
});

describe("scheduled functions through the Invoke API", () => {
  it("outbox-relay with Kafka off skips and leaves the outbox as it was", async () => {
    const before = await fx.db.pool.query("SELECT count(*)::int AS n FROM outbox_pending");
    expect(before.rows[0].n).toBeGreaterThan(0);
    const result = await invoke("outbox-relay", sample("outbox-relay") ?? scheduledEvent("outbox-relay"));
    expect(result).toEqual({ skipped: true, published: 0, batches: 0, kafka: "off" });
    const after = await fx.db.pool.query("SELECT count(*)::int AS n FROM outbox_pending");
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });

  it("maintenance prunes published outbox rows past retention and expired idempotency records", async () => {
    const oldEvent = randomUUID();
    await fx.db.pool.query(
      `INSERT INTO outbox (event_id, session_id, event_type, event, created_at)
       VALUES ($1, $2, 'chat.session.created', '{}'::jsonb, now() - interval '3 days')`,
      [oldEvent, randomUUID()],
    );
    await fx.db.pool.query(
      "DELETE FROM outbox_pending WHERE id IN (SELECT id FROM outbox WHERE event_id = $1)", // published
      [oldEvent],
    );
    await fx.db.pool.query(
      `INSERT INTO idempotency_records (scope, idempotency_key, request_hash, status, locked_until, expires_at)
       VALUES ('sessions-create', $1, 'h', 'completed', now() - interval '2 days', now() - interval '1 day')`,
      [`expired-${randomUUID()}`],
    );
    const result = await invoke<Record<string, unknown>>(
      "maintenance",
      sample("maintenance") ?? scheduledEvent("maintenance"),
    );
    expect(result).toEqual({
      outboxPruned: 1,
      idempotencyExpired: 1,
      consumedEventsPruned: 0,
      erasedActivityPruned: 0,
      sessionsPurged: 0,
      sessionsFailed: 0,
      cacheInvalidationsDrained: true,
    });
    const left = await fx.db.pool.query("SELECT count(*)::int AS n FROM outbox WHERE event_id = $1", [
      oldEvent,
    ]);
    expect(left.rows[0].n).toBe(0);
    // the live session is untouched (no retention configured)
    const got = await fx.call("GET", `/sessions/${s.sessionId}`, { token: s.token });
    expect(got.status).toBe(200);
  });

  it("health-canary calls the runner's own GET /health and reports it healthy", async () => {
    const result = await invoke<Record<string, unknown>>(
      "health-canary",
      sample("health-canary") ?? scheduledEvent("health-canary"),
    );
    expect(result).toEqual({
      ok: true,
      status: 200,
      health: "ok",
      latency_ms: expect.any(Number),
      url: `${fx.url}/health`,
    });
  });
});

describe("events-consumer through the Invoke API", () => {
  async function outboxEvents(sessionId: string): Promise<CloudEvent[]> {
    const res = await fx.db.pool.query("SELECT event FROM outbox WHERE session_id = $1 ORDER BY id", [
      sessionId,
    ]);
    return res.rows.map((r) => r.event as CloudEvent);
  }
  const mskEvent = (events: CloudEvent[], firstOffset = 0) =>
    toMskEvent({
      topic: CHAT_TOPIC,
      partition: 0,
      bootstrapServers: ["b-1.local:9098"],
      messages: events.map((e, i) => {
        const record = toKafkaRecord(CHAT_TOPIC, e);
        return {
          key: Buffer.from(record.key),
          value: Buffer.from(record.value),
          offset: String(firstOffset + i),
          timestamp: String(Date.parse(e.time)),
          headers: record.headers,
        };
      }),
    });

  it("applies a session's real CloudEvents to session_activity; a redelivery applies nothing", async () => {
    const session = await createSession(fx);
    await postMessage(fx, session, "counted");
    const events = await outboxEvents(session.sessionId);
    expect(events.map((e) => e.type)).toEqual([
      "chat.session.created",
      "chat.message.created",
      "chat.message.created",
      "chat.message.created",
    ]);
    const event = mskEvent(events, 10);
    const first = await invoke("events-consumer", event);
    expect(first).toEqual({ records: 4, applied: 4, duplicates: 0, rejected: [] });
    const row = async () =>
      (
        await fx.db.pool.query(
          "SELECT sessions_created, messages_created, messages_edited, messages_deleted, erased, last_event_time FROM session_activity WHERE session_id = $1",
          [session.sessionId],
        )
      ).rows;
    const applied = await row();
    expect(applied).toEqual([
      {
        sessions_created: 1,
        messages_created: 3,
        messages_edited: 0,
        messages_deleted: 0,
        erased: false,
        last_event_time: new Date(events.at(-1)?.time as string),
      },
    ]);

    const again = await invoke("events-consumer", event);
    expect(again).toEqual({ records: 4, applied: 0, duplicates: 4, rejected: [] });
    expect(await row()).toEqual(applied);
  });

  it("reports a record that is not a chat CloudEvent as rejected and applies the rest", async () => {
    const session = await createSession(fx);
    const [created] = await outboxEvents(session.sessionId);
    const event = mskEvent([created as CloudEvent], 100);
    const records = Object.values(event.records)[0];
    records?.push({
      ...(records[0] as (typeof records)[number]),
      offset: 101,
      value: Buffer.from("not json").toString("base64"),
    });
    const result = await invoke("events-consumer", event);
    expect(result).toEqual({
      records: 2,
      applied: 1,
      duplicates: 0,
      rejected: [{ partition: `${CHAT_TOPIC}-0`, offset: 101, reason: "not JSON" }],
    });
  });
});

describe("the Invoke API", () => {
  it("throws ResourceNotFoundException for a function that is not in the manifest", async () => {
    const err = await lambda
      .send(new InvokeCommand({ FunctionName: "no-such-function", Payload: new TextEncoder().encode("{}") }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResourceNotFoundException);
    expect((err as ResourceNotFoundException).$metadata.httpStatusCode).toBe(404);
  });

  it("every function of the manifest was invoked by name in this file", () => {
    expect([...covered].sort()).toEqual(functions.map((f) => f.name).sort());
  });
});
