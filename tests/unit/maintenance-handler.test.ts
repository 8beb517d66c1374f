import { afterAll, beforeEach, describe, expect, it, vi } from "vitest";
import { lambdaContext } from "../helpers/lambda-events.ts";

// The handler's own part: the settings and the time it hands the maintenance run (which maintenance.test.ts covers).
vi.mock("../../layers/chat/db/pool.ts", () => ({ getPool: async () => ({}) }));
vi.mock("../../layers/chat/chat-runtime.ts", () => ({
  getChatService: async () => ({}),
  getCacheGuard: () => null,
}));
const runs: unknown[] = [];
let runMs = 0;
let outcome: Record<string, unknown> = {};
const erased: unknown[] = [];
const failing = new Set<string>();
vi.mock("../../layers/chat/maintenance/maintenance.ts", async (importOriginal) => ({
  eraseRequest: (await importOriginal<typeof import("../../layers/chat/maintenance/maintenance.ts")>())
    .eraseRequest,
  eraseSessions: async (_pool: unknown, _guard: unknown, ids: string[]) => {
    erased.push(ids);
    const failed = ids.filter((id) => failing.has(id));
    return { erased: ids.length - failed.length, absent: 0, failed };
  },
  runMaintenance: async (_pool: unknown, _guard: unknown, opts: unknown) => {
    runs.push(opts);
    await new Promise((r) => setTimeout(r, runMs));
    return outcome;
  },
}));
vi.stubEnv("OUTBOX_RETENTION_HOURS", "48");
vi.stubEnv("CONSUMED_EVENTS_RETENTION_HOURS", "500");
vi.stubEnv("SESSION_RETENTION_DAYS", "30");
vi.stubEnv("POWERTOOLS_LOG_LEVEL", "SILENT");
afterAll(() => vi.unstubAllEnvs());
// each test starts from nothing recorded, so they pass in any order (vitest --sequence.shuffle)
beforeEach(async () => {
  runs.length = 0;
  erased.length = 0;
  failing.clear();
  runMs = 0;
  outcome = {};
  vi.restoreAllMocks();
  (await import("../../layers/chat/config.ts")).resetConfig();
});

describe("maintenance, the function", () => {
  it("runs with the configured retentions, stopping 15 s before the function's timeout (1 s at the least)", async () => {
    const { resetConfig } = await import("../../layers/chat/config.ts");
    resetConfig();
    const { handler } = await import("../../functions/maintenance.ts");
    await handler({}, lambdaContext("maintenance", 60_000));
    await handler({}, lambdaContext("maintenance", 5_000));
    expect(runs).toEqual([
      {
        outboxRetentionHours: 48,
        consumedEventsRetentionHours: 500,
        sessionRetentionDays: 30,
        timeBudgetMs: expect.any(Number),
      },
      expect.objectContaining({ timeBudgetMs: 1000 }),
    ]);
    const first = (runs[0] as { timeBudgetMs: number }).timeBudgetMs;
    expect(first).toBeLessThanOrEqual(45_000);
    expect(first).toBeGreaterThan(44_000);
  });

  it("logs a run that left sessions unerased or invalidations undrained at WARN, a whole one at INFO", async () => {
    const { handler } = await import("../../functions/maintenance.ts");
    const { logger } = await import("../../functions/http/logger.ts");
    const warn = vi.spyOn(logger, "warn");
    const info = vi.spyOn(logger, "info");
    const outcomes = [
      { sessionsFailed: 0, cacheInvalidationsDrained: true },
      { sessionsFailed: 2, cacheInvalidationsDrained: true },
      { sessionsFailed: 0, cacheInvalidationsDrained: false },
    ];
    for (const next of outcomes) {
      outcome = next;
      await handler({}, lambdaContext("maintenance", 60_000));
    }
    expect(info.mock.calls.filter((c) => c[0] === "maintenance").map((c) => c[1])).toEqual([outcomes[0]]);
    expect(warn.mock.calls.filter((c) => c[0] === "maintenance").map((c) => c[1])).toEqual(outcomes.slice(1));
  });

  it("ends with its run, not with an error of its own just before the timeout (Lambda's resets the sandbox)", async () => {
    const { handler } = await import("../../functions/maintenance.ts");
    runMs = 300;
    await expect(handler({}, lambdaContext("maintenance", 100))).resolves.toEqual({});
  });

  it("an operator's {eraseSessions: [...]} erases those sessions (a database restore's runbook), and nothing else", async () => {
    const { handler } = await import("../../functions/maintenance.ts");
    runMs = 0;
    const before = runs.length;
    const id = "6F1D2C3B-4A59-4E8D-9C7B-1A2B3C4D5E6F";
    await expect(handler({ eraseSessions: [id] }, lambdaContext("maintenance", 60_000))).resolves.toEqual({
      erased: 1,
      absent: 0,
      failed: [],
    });
    expect(erased).toEqual([[id.toLowerCase()]]);
    await expect(handler({ eraseSessions: ["x"] }, lambdaContext("maintenance", 60_000))).rejects.toThrow(
      /not a session id/,
    );
    expect(runs.length).toBe(before); // no maintenance run
    expect(erased).toHaveLength(1);
  });

  it("logs each session an operator's erase reached, as session-erase's access line does: a restore's runbook erases them again", async () => {
    const { handler } = await import("../../functions/maintenance.ts");
    const { logger } = await import("../../functions/http/logger.ts");
    const info = vi.spyOn(logger, "info");
    const ids = ["0b6f1d2c-3b4a-4e8d-9c7b-1a2b3c4d5e6f", "1c7a2e3d-4c5b-4f9e-8d6c-2b3c4d5e6f70"];
    await handler({ eraseSessions: ids }, lambdaContext("maintenance", 60_000));
    // nothing else records them (the invoke's payload is in no log): after a restore to before this erase, the
    // runbook's query of the logs must find them, or the sessions are back for good
    const logged = info.mock.calls
      .filter((c) => c[0] === "session erased")
      .map((c) => (c[1] as { session_id: string }).session_id);
    expect(logged).toEqual(ids);
  });

  it("refuses a list of more than 1000 ids, or one with anything but a session id in it, whole", async () => {
    const { handler } = await import("../../functions/maintenance.ts");
    const id = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
    const ids = Array.from({ length: 1000 }, (_, i) => id(i));
    await expect(
      handler({ eraseSessions: ids }, lambdaContext("maintenance", 60_000)),
    ).resolves.toMatchObject({
      erased: 1000,
    });
    await expect(
      handler({ eraseSessions: [...ids, id(1000)] }, lambdaContext("maintenance", 60_000)),
    ).rejects.toThrow(/at most 1000/);
    for (const bad of [`x${id(1)}`, `${id(1)}0`, ` ${id(1)}`, 42, null])
      await expect(
        handler({ eraseSessions: [id(2), bad] }, lambdaContext("maintenance", 60_000)),
        String(bad),
      ).rejects.toThrow(/not a session id/);
    expect(erased).toHaveLength(1);
  });

  it("logs no erase line for a session it failed to erase, and the run at WARN: the runbook invokes again with those", async () => {
    const { handler } = await import("../../functions/maintenance.ts");
    const { logger } = await import("../../functions/http/logger.ts");
    const info = vi.spyOn(logger, "info");
    const warn = vi.spyOn(logger, "warn");
    const ids = ["0b6f1d2c-3b4a-4e8d-9c7b-1a2b3c4d5e6f", "1c7a2e3d-4c5b-4f9e-8d6c-2b3c4d5e6f70"];
    failing.add(ids[1] as string);
    await expect(handler({ eraseSessions: ids }, lambdaContext("maintenance", 60_000))).resolves.toEqual({
      erased: 1,
      absent: 0,
      failed: [ids[1]],
    });
    const logged = info.mock.calls
      .filter((c) => c[0] === "session erased")
      .map((c) => (c[1] as { session_id: string }).session_id);
    expect(logged).toEqual([ids[0]]);
    expect(warn.mock.calls.map((c) => c[0])).toEqual(["maintenance erase"]);
    expect(info.mock.calls.map((c) => c[0])).not.toContain("maintenance erase");
  });
});
