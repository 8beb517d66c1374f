import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { httpHandler } from "../../functions/http/http-handler.ts";
import { resetRateLimiter } from "../../functions/http/rate-limit.ts";
import { ChatError } from "../../layers/chat/chat/errors.ts";
import { resetChatRuntime } from "../../layers/chat/chat-runtime.ts";
import { resetConfig } from "../../layers/chat/config.ts";
import { closePool } from "../../layers/chat/db/pool.ts";
import { capturedOutput, jsonLines } from "../helpers/captured-output.ts";
import { call, type HttpLambda, httpEvent } from "../helpers/lambda-events.ts";

/**
 * What the on-call reads for a 503: the function's ERROR line must say which way the backend was away, with a
 * fixed word (pg's errors for a silent or dropped connection have no code and are named "Error"), and carry the
 * request id the client got, so a reported id finds it.
 */
let server: Server;
const sockets: Socket[] = [];
beforeAll(async () => {
  // A Postgres that accepts connections and never answers (a host gone silent, a full listen queue).
  server = createServer((s) => {
    sockets.push(s);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  vi.stubEnv("DATABASE_URL", `postgres://chat@127.0.0.1:${port}/chat`);
  vi.stubEnv("DB_CONNECT_TIMEOUT_MS", "300");
  vi.stubEnv("REDIS_URL", undefined);
  vi.stubEnv("KAFKA_BROKERS", undefined);
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "INFO");
  resetConfig();
  resetRateLimiter();
  resetChatRuntime();
});
afterAll(async () => {
  vi.unstubAllEnvs();
  resetChatRuntime();
  await closePool();
  resetConfig();
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe("a 503's log line", () => {
  it("names why the database was away, and the request's id", async () => {
    const { handler } = (await import("../../functions/sessions-create.ts")) as { handler: HttpLambda };
    const { result: res, printed } = await capturedOutput(() =>
      call(handler, "sessions-create", httpEvent("POST", "/sessions/create", { body: {} })),
    );
    expect(res.statusCode).toBe(503);
    const failed = jsonLines(printed).find((l) => l.message === "request failed");
    expect(failed, printed).toBeDefined();
    expect(failed?.level).toBe("ERROR");
    expect(failed?.error).toMatchObject({ reason: "connect_timeout" });
    expect(failed?.request_id).toBe(res.headers["x-request-id"]);
  });

  it("of a change that may have been made names its cause's reason: the database's reply was lost", async () => {
    // as ChatService words it (mayHaveCommitted) after a statement sent and never answered
    const handler = httpHandler({ name: "may-have-committed", chat: false }, async () => {
      throw new ChatError("service_unavailable", "the change may have been made", {
        retryAfterSeconds: 2,
        cause: new Error("Query read timeout"),
      });
    }) as unknown as HttpLambda;
    const { result: res, printed } = await capturedOutput(() =>
      call(handler, "messages-post", httpEvent("POST", "/messages/post", { body: {} })),
    );
    expect(res.statusCode).toBe(503);
    const failed = jsonLines(printed).find((l) => l.message === "request failed");
    expect(failed?.error, printed).toMatchObject({ name: "ChatError", reason: "query_read_timeout" });
  });
});
