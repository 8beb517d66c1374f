import { afterAll, beforeEach, describe, expect, it, vi } from "vitest";
import { lambdaContext } from "../helpers/lambda-events.ts";

// A new sandbox's pool reads the database secret first: slow here, as a slow Secrets Manager answer would be.
const SECRET_READ_MS = 400;
vi.mock("../../layers/chat/db/pool.ts", () => ({
  getPool: async () => {
    await new Promise((r) => setTimeout(r, SECRET_READ_MS));
    return {};
  },
  queryTimeoutMs: () => 6000,
}));
const budgets: number[] = [];
let runMs = 0;
vi.mock("../../layers/chat/events/outbox-relay.ts", () => ({
  relayOutbox: async (_pool: unknown, _publish: unknown, opts: { timeBudgetMs: number }) => {
    budgets.push(opts.timeBudgetMs);
    await new Promise((r) => setTimeout(r, runMs));
    return { skipped: false, published: 0, batches: 0 };
  },
  relayReserveMs: () => 20_000,
}));
vi.mock("../../layers/chat/events/outbox-store.ts", () => ({ oldestPendingAgeSeconds: async () => 0 }));
vi.stubEnv("KAFKA_BROKERS", "127.0.0.1:1");
vi.stubEnv("POWERTOOLS_LOG_LEVEL", "SILENT");
vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "true");
afterAll(() => vi.unstubAllEnvs());
// each test starts from nothing recorded, so they pass in any order (vitest --sequence.shuffle)
beforeEach(() => {
  budgets.length = 0;
  runMs = 0;
});

describe("outbox-relay's time budget", () => {
  it("counts from after the pool is ready, so a slow secret read cannot push publishing past the reserve", async () => {
    const { handler } = await import("../../functions/outbox-relay.ts");
    const context = lambdaContext("outbox-relay", 60_000);
    await handler({}, context);
    // 60 s of function, less the 20 s reserve, less the time the pool took
    expect(budgets).toHaveLength(1);
    expect(budgets[0]).toBeLessThanOrEqual(40_000 - SECRET_READ_MS + 50);
  });

  it("ends with its run, not with an error of its own just before the timeout (Lambda's resets the sandbox)", async () => {
    const { handler } = await import("../../functions/outbox-relay.ts");
    runMs = SECRET_READ_MS;
    await expect(handler({}, lambdaContext("outbox-relay", 100))).resolves.toMatchObject({ published: 0 });
  });
});
