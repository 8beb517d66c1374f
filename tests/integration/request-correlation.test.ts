import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { resetRateLimiter } from "../../functions/http/rate-limit.ts";
import { capturedOutput, jsonLines } from "../helpers/captured-output.ts";
import { call, type HttpLambda, httpEvent } from "../helpers/lambda-events.ts";
import { resetRuntime } from "../helpers/runner-fixture.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * From an event on the topic back to the request that made it, with the function logs alone: each event's
 * `subject` is its session, and the access line of every request about a session names it, next to the request
 * id the client got (and the function's invocation id, which its other lines carry).
 */
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(4);
  vi.stubEnv("DATABASE_URL", db.url);
  vi.stubEnv("REDIS_URL", undefined);
  vi.stubEnv("KAFKA_BROKERS", undefined);
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "INFO");
  await resetRuntime();
  resetRateLimiter();
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await resetRuntime();
  await db?.drop();
});

/** The function's JSON log lines while `work` ran, and its result. */
async function logged<T>(work: () => Promise<T>): Promise<{ result: T; lines: Record<string, unknown>[] }> {
  const { result, printed } = await capturedOutput(work);
  return { result, lines: jsonLines(printed) };
}

const send = async (name: string, event: ReturnType<typeof httpEvent>) => {
  const { handler } = (await import(`../../functions/${name}.ts`)) as { handler: HttpLambda };
  return call(handler, name, event);
};

describe("an event's request, from the logs", () => {
  it("the access line of a create and of a post names the session their events are about", async () => {
    const create = await logged(() =>
      send("sessions-create", httpEvent("POST", "/sessions/create", { body: { user_id: "ada" } })),
    );
    expect(create.result.statusCode).toBe(201);
    const sid = create.result.json.session.session_id as string;
    const token = create.result.json.token as string;
    const post = await logged(() =>
      send(
        "messages-post",
        httpEvent("POST", "/messages/post", {
          body: { session_id: sid, content: "hello" },
          headers: { authorization: `Bearer ${token}` },
        }),
      ),
    );
    expect(post.result.statusCode).toBe(201);

    const events = await db.pool.query<{ subject: string; type: string }>(
      "SELECT event->>'subject' AS subject, event_type AS type FROM outbox ORDER BY id",
    );
    expect(events.rows.map((e) => e.type)).toEqual([
      "chat.session.created",
      "chat.message.created",
      "chat.message.created",
      "chat.message.created",
    ]);
    for (const [run, fn] of [
      [create, "sessions-create"],
      [post, "messages-post"],
    ] as const) {
      const access = run.lines.find((l) => l.message === "request");
      expect(access, JSON.stringify(run.lines)).toMatchObject({
        function: fn,
        request_id: run.result.headers["x-request-id"],
        session_id: events.rows[0]?.subject,
      });
    }
    expect(new Set(events.rows.map((e) => e.subject))).toEqual(new Set([sid]));
  });
});
