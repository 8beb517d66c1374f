import { randomUUID } from "node:crypto";
import type { APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { getPool } from "#chat/db/pool.ts";
import type { FunctionSpec } from "../../functions/manifest.ts";
import type { FunctionRuntime } from "../../local/function-runtime.ts";
import { type FreezingProxy, freezingProxy } from "../helpers/freezing-proxy.ts";
import { shortFunction, stubFunctionEnv } from "../helpers/in-process-function.ts";
import { type HttpLambda, httpEvent, lambdaContext } from "../helpers/lambda-events.ts";
import { resetRuntime } from "../helpers/runner-fixture.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * A request's time is its function's, not each step's: against a Postgres that stalls, a post at the defaults
 * waits up to DB_STATEMENT_TIMEOUT_MS + 1 s per statement (6 s) and DB_CONNECT_TIMEOUT_MS per checkout, past a
 * short remaining time, and the invocation then ends at its timeout (API Gateway's bare 500; locally Sandbox.Timedout)
 * instead of answering the problem document. The runtime here is the local runner's, which enforces the timeout;
 * the function is given 2 s.
 */
let db: TestDatabase;
let proxy: FreezingProxy;
let runtime: FunctionRuntime;
let shortPost: FunctionSpec;

beforeAll(async () => {
  db = await createTestDatabase(2);
  proxy = await freezingProxy(new URL(db.url));
  await stubFunctionEnv(proxy.url);
  ({ spec: shortPost, runtime } = await shortFunction("messages-post", 2));
});

afterAll(async () => {
  proxy?.thaw();
  await runtime?.drain();
  await resetRuntime();
  vi.unstubAllEnvs();
  await proxy?.close();
  await db?.drop();
});

async function newSession(): Promise<{ sessionId: string; token: string }> {
  const { handler } = (await import("../../functions/sessions-create.ts")) as { handler: HttpLambda };
  const res = await handler(
    httpEvent("POST", "/sessions/create", { body: {} }),
    lambdaContext("sessions-create"),
  );
  expect(res.statusCode, res.body).toBe(201);
  const body = JSON.parse(String(res.body));
  return { sessionId: body.session.session_id, token: body.token };
}

const postEvent = (s: { sessionId: string; token: string }, content: string, key: string) =>
  httpEvent("POST", "/messages/post", {
    body: { session_id: s.sessionId, content },
    headers: { authorization: `Bearer ${s.token}`, "idempotency-key": key },
  });

/** The invocation's answer: it must be the function's own, not the runtime's timeout. */
async function invokePost(event: ReturnType<typeof postEvent>) {
  const outcome = await runtime.invoke(shortPost, event);
  expect(outcome.ok ? "answered" : outcome.error.errorType).toBe("answered");
  const res = (outcome.ok ? outcome.result : {}) as APIGatewayProxyStructuredResultV2;
  return { ...res, json: res.body ? JSON.parse(res.body) : undefined };
}

const userMessages = async (sessionId: string) =>
  (
    await db.pool.query<{ content: string }>(
      "SELECT content FROM messages WHERE session_id = $1 AND role = 'user' ORDER BY seq",
      [sessionId],
    )
  ).rows.map((r) => r.content);

/** Nothing of the functions' left open in Postgres, and every pooled connection back (or closed). */
async function nothingLeftOpen(): Promise<void> {
  const pool = await getPool();
  expect({ checkedOut: pool.totalCount - pool.idleCount, waiting: pool.waitingCount }).toEqual({
    checkedOut: 0,
    waiting: 0,
  });
  const open = await db.pool.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = 'chat-backend' AND state <> 'idle'`,
  );
  expect(open.rows[0].n).toBe(0);
}

describe("a post with little time left, against a Postgres that stalls", () => {
  it("answers the problem document's 503 before its timeout, and nothing of it is stored", async () => {
    const s = await newSession();
    const key = randomUUID();
    const res = await proxy.during(
      () => proxy.freeze(),
      () => invokePost(postEvent(s, "is anyone there?", key)),
    );
    expect(res.statusCode, res.body).toBe(503);
    expect(res.headers?.["content-type"]).toBe("application/problem+json");
    expect(res.json.code).toBe("service_unavailable");
    expect(String(res.headers?.["retry-after"])).toMatch(/^[1-9]\d*$/);
    expect(res.json.detail).toMatch(/retry shortly/);
    await nothingLeftOpen();
    expect(await userMessages(s.sessionId)).toEqual([]);
    // nothing half-done: the same post, retried with its key, is made once (not replayed, not "in progress")
    const retry = await invokePost(postEvent(s, "is anyone there?", key));
    expect(retry.statusCode, retry.body).toBe(201);
    expect(retry.headers?.["idempotent-replayed"]).toBeUndefined();
    expect(await userMessages(s.sessionId)).toEqual(["is anyone there?"]);
  });

  it("one whose change reached Postgres answers in time that it may have been made, and its retry replays it", async () => {
    const s = await newSession();
    const key = randomUUID();
    const res = await proxy.during(
      () => proxy.freezeRepliesAfter("was it made in time?"),
      () => invokePost(postEvent(s, "was it made in time?", key)),
    );
    expect(res.statusCode, res.body).toBe(503);
    expect(res.json.detail).toMatch(/may have been made/);
    await nothingLeftOpen();
    expect(await userMessages(s.sessionId)).toEqual(["was it made in time?"]);
    const retry = await invokePost(postEvent(s, "was it made in time?", key));
    expect(retry.statusCode, retry.body).toBe(201);
    expect(retry.headers?.["idempotent-replayed"]).toBe("true");
    expect(await userMessages(s.sessionId)).toEqual(["was it made in time?"]);
  });
});
