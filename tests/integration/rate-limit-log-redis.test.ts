import { randomInt } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { resetRateLimiter } from "../../functions/http/rate-limit.ts";
import { resetConfig } from "../../layers/chat/config.ts";
import { capturedOutput, jsonLines } from "../helpers/captured-output.ts";
import { SHARED_REDIS_URL } from "../helpers/chat-fixture.ts";
import { call, type HttpLambda, httpEvent } from "../helpers/lambda-events.ts";

/**
 * The 429's access line names the limiter that refused it (bug 178): `redis` when the shared limiter decided, as it
 * does whenever Redis answers (tests/unit/rate-limit-log.test.ts covers the in-process one). An operator reading a
 * 429 storm tells from it whether the limits were shared across sandboxes or each sandbox's own.
 */
beforeAll(() => {
  vi.stubEnv("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none");
  vi.stubEnv("REDIS_URL", SHARED_REDIS_URL);
  // the shared Redis under a loaded CI machine: a hit must not turn into the in-process fallback
  vi.stubEnv("REDIS_COMMAND_TIMEOUT_MS", "1000");
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

/** A GET from `ip` (it fails on the missing token once the limiter let it through). */
const get = async (ip: string) => {
  const { handler } = (await import("../../functions/session-get.ts")) as { handler: HttpLambda };
  const event = httpEvent("GET", "/sessions/7b0c4a4e-1f7e-4c65-9a3e-2b1f3c4d5e6f");
  event.requestContext.http.sourceIp = ip;
  return call(handler, "session-get", event);
};

describe("a request the shared limiter refused", () => {
  it("has an access line naming the Redis limiter", async () => {
    // On a loaded machine a check can outlast its bound and be decided in process (`local`), as designed: each try
    // takes an address of its own (the window's key lives in the shared Redis), and one must be Redis's.
    const lines: Record<string, unknown>[] = [];
    for (let attempt = 0; attempt < 5 && !lines.some((l) => l.limiter === "redis"); attempt++) {
      const ip = `198.51.${randomInt(0, 256)}.${randomInt(1, 255)}`;
      // the first takes the address's one request of the window (it then fails on the missing token)
      expect((await get(ip)).statusCode).toBe(401);
      const { result, printed } = await capturedOutput(() => get(ip));
      expect(result.statusCode).toBe(429);
      const access = jsonLines(printed).filter((l) => l.message === "request");
      expect(access, printed).toHaveLength(1);
      lines.push(access[0] as Record<string, unknown>);
    }
    expect(lines.find((l) => l.limiter === "redis") ?? lines).toMatchObject({
      status: 429,
      rate_limited: ["per-ip"],
      limiter: "redis",
    });
  });
});
