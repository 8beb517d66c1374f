import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { resetRateLimiter } from "../../functions/http/rate-limit.ts";
import { resetConfig } from "../../layers/chat/config.ts";
import { capturedOutput, jsonLines } from "../helpers/captured-output.ts";
import { call, type HttpLambda, httpEvent } from "../helpers/lambda-events.ts";

/**
 * What a refused request costs in CloudWatch Logs: a client that ignores its 429s can send the stage's whole
 * throttle (50 a second by default) into the limiter, so each 429 should write one line, the access line, with why
 * it was refused, and not a second line that repeats every context field of it.
 */
beforeAll(() => {
  vi.stubEnv("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none");
  vi.stubEnv("REDIS_URL", undefined);
  vi.stubEnv("KAFKA_BROKERS", undefined);
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "INFO");
  vi.stubEnv("RATE_LIMIT_PER_IP", "1");
  vi.stubEnv("RATE_LIMIT_PER_TOKEN", "0");
  resetConfig();
  resetRateLimiter();
});
afterAll(() => {
  vi.unstubAllEnvs();
  resetConfig();
  resetRateLimiter();
});

const get = async () => {
  const { handler } = (await import("../../functions/session-get.ts")) as { handler: HttpLambda };
  const event = httpEvent("GET", "/sessions/7b0c4a4e-1f7e-4c65-9a3e-2b1f3c4d5e6f");
  event.requestContext.http.sourceIp = "198.51.100.77";
  return call(handler, "session-get", event);
};

describe("a rate-limited request's log", () => {
  it("is one access line that says which limit refused it", async () => {
    // the first request takes the address's one request of the window (it then fails on the missing token)
    expect((await get()).statusCode).toBe(401);
    const { result, printed } = await capturedOutput(get);
    expect(result.statusCode).toBe(429);
    const lines = jsonLines(printed);
    expect(lines, printed).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      message: "request",
      function: "session-get",
      status: 429,
      request_id: result.headers["x-request-id"],
      rate_limited: ["per-ip"],
      limiter: "local",
    });
  });
});
