import type { APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { disconnectProducer } from "#chat/events/kafka-producer.ts";
import type { FunctionSpec } from "../../functions/manifest.ts";
import type { FunctionRuntime } from "../../local/function-runtime.ts";
import { startHungBroker } from "../helpers/hung-broker.ts";
import { shortFunction, stubFunctionEnv } from "../helpers/in-process-function.ts";
import { type HttpLambda, httpEvent, lambdaContext } from "../helpers/lambda-events.ts";
import { resetRuntime } from "../helpers/runner-fixture.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * A change's events go to Kafka right after its commit (the fast path), bounded by KAFKA_PUBLISH_TIMEOUT_MS; what it
 * cannot publish the relay publishes later. A change committed with less of the request's time left than that bound,
 * against a broker that answers nothing, was answered by the function's timeout (API Gateway's bare 500; locally
 * Sandbox.Timedout) though the change was made, and a client retrying without its key made it twice. The bound is
 * 5 s here and the function has 2 s, so that every post commits with less time left than the bound.
 */
let db: TestDatabase;
let broker: Awaited<ReturnType<typeof startHungBroker>>;
let runtime: FunctionRuntime;
let shortPost: FunctionSpec;
let session: { sessionId: string; token: string };

beforeAll(async () => {
  db = await createTestDatabase(2);
  await stubFunctionEnv(db.url);
  // the session is made without Kafka: its own publish would pause the fast path for the post
  const create = ((await import("../../functions/sessions-create.ts")) as { handler: HttpLambda }).handler;
  const created = await create(
    httpEvent("POST", "/sessions/create", { body: {} }),
    lambdaContext("sessions-create"),
  );
  expect(created.statusCode, created.body).toBe(201);
  const body = JSON.parse(String(created.body));
  session = { sessionId: body.session.session_id, token: body.token };

  // a broker that accepts connections and then answers nothing (its process stopped)
  broker = await startHungBroker();
  await stubFunctionEnv(db.url, {
    KAFKA_BROKERS: `127.0.0.1:${broker.port}`,
    KAFKA_PUBLISH_TIMEOUT_MS: "5000",
  });
  ({ spec: shortPost, runtime } = await shortFunction("messages-post", 2));
});

afterAll(async () => {
  await runtime?.drain();
  broker?.stop();
  await disconnectProducer();
  await resetRuntime();
  vi.unstubAllEnvs();
  await db?.drop();
});

describe("a change committed with less time left than the publish bound, against a broker that answers nothing", () => {
  it("is answered by the function (201) before its timeout, and its events are left to the relay", async () => {
    const outcome = await runtime.invoke(
      shortPost,
      httpEvent("POST", "/messages/post", {
        body: { session_id: session.sessionId, content: "publish me later" },
        headers: { authorization: `Bearer ${session.token}` },
      }),
    );
    expect(outcome.ok ? "answered" : outcome.error.errorType).toBe("answered");
    const res = (outcome.ok ? outcome.result : {}) as APIGatewayProxyStructuredResultV2;
    expect(res.statusCode, res.body).toBe(201);
    const stored = await db.pool.query(
      "SELECT count(*)::int AS n FROM messages WHERE session_id = $1 AND content = 'publish me later'",
      [session.sessionId],
    );
    expect(stored.rows[0].n).toBe(1);
    const pending = await db.pool.query(
      "SELECT count(*)::int AS n FROM outbox WHERE session_id = $1 AND published_at IS NULL",
      [session.sessionId],
    );
    expect(pending.rows[0].n).toBeGreaterThanOrEqual(2); // the post's two events, at least: the relay's now
  });
});
