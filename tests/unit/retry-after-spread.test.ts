import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { resetRateLimiter } from "../../functions/http/rate-limit.ts";
import { UNAVAILABLE_RETRY_AFTER_SECONDS, unavailableRetryAfter } from "../../layers/chat/chat/errors.ts";
import { resetChatRuntime } from "../../layers/chat/chat-runtime.ts";
import { resetConfig } from "../../layers/chat/config.ts";
import { closePool } from "../../layers/chat/db/pool.ts";
import { capturedOutput } from "../helpers/captured-output.ts";
import { call, type HttpLambda, httpEvent } from "../helpers/lambda-events.ts";

/**
 * An outage fails every request in flight at once. Told one Retry-After, those clients all come back in the same
 * second, a wave as large as the load that failed, against a database just coming back: the 503's Retry-After must
 * spread them.
 */
const { min, max } = UNAVAILABLE_RETRY_AFTER_SECONDS;

beforeAll(async () => {
  // A port nothing listens on: every connection is refused at once (ECONNREFUSED, a 503).
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  vi.stubEnv("DATABASE_URL", `postgres://chat@127.0.0.1:${port}/chat`);
  vi.stubEnv("REDIS_URL", undefined);
  vi.stubEnv("KAFKA_BROKERS", undefined);
  resetConfig();
  resetRateLimiter();
  resetChatRuntime();
});
afterAll(async () => {
  vi.unstubAllEnvs();
  resetChatRuntime();
  await closePool();
  resetConfig();
});

describe("a 503's Retry-After", () => {
  it("differs between clients that failed together, each a whole number of seconds in the range", async () => {
    const { handler } = (await import("../../functions/sessions-create.ts")) as { handler: HttpLambda };
    // captured: each 503 logs its ERROR line
    const { result: answers } = await capturedOutput(() =>
      Promise.all(
        Array.from({ length: 40 }, () =>
          call(handler, "sessions-create", httpEvent("POST", "/sessions/create", { body: {} })),
        ),
      ),
    );
    expect(answers.map((a) => a.statusCode)).toEqual(Array(40).fill(503));
    const values = answers.map((a) => a.headers["retry-after"]);
    for (const v of values) {
      expect(v).toMatch(/^\d+$/);
      expect(Number(v)).toBeGreaterThanOrEqual(min);
      expect(Number(v)).toBeLessThanOrEqual(max);
    }
    // 40 draws of four values: all alike with probability 4^-39
    expect(new Set(values).size, values.join(",")).toBeGreaterThan(1);
  });

  it("takes every whole second of the range, never 0 (retry at once) nor past it", () => {
    const drawn = [0, 0.24, 0.25, 0.5, 0.75, 0.999_999].map((r) => unavailableRetryAfter(() => r));
    expect(drawn).toEqual([min, min, min + 1, min + 2, max, max]);
    // a source that returns its upper bound (Math.random never does; an injected one may) still stays in range
    expect(unavailableRetryAfter(() => 1)).toBe(max);
    expect(min).toBeGreaterThanOrEqual(1);
  });
});
