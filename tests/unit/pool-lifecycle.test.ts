import { afterEach, describe, expect, it, vi } from "vitest";

// The connection settings (in AWS, a read of the database secret) fail once, as a timed-out read would.
let failures = 0;
vi.mock("../../layers/chat/db/database-url.ts", () => ({
  connectionConfig: vi.fn(async () => {
    if (failures > 0) {
      failures--;
      throw new Error("the database secret was not read within 5000 ms");
    }
    return { host: "127.0.0.1", port: 5432, user: "nobody", database: "none" };
  }),
}));
const { closePool, getPool } = await import("../../layers/chat/db/pool.ts");

afterEach(() => closePool());

/** The process-wide pool: created on first use, never connected here (pg connects on the first query). */
describe("the process's pool", () => {
  it("a failed creation is tried again by the next caller, not handed to every later one", async () => {
    failures = 1;
    await expect(getPool()).rejects.toThrow(/not read within/);
    const pool = await getPool();
    expect(pool).toBeDefined();
    expect(await getPool()).toBe(pool);
  });

  it("concurrent first callers share one pool", async () => {
    const [a, b] = await Promise.all([getPool(), getPool()]);
    expect(a).toBe(b);
  });

  it("after closePool, the next caller gets a new pool, not the ended one", async () => {
    const first = await getPool();
    await closePool();
    expect(first.ended).toBe(true);
    const next = await getPool();
    expect(next).not.toBe(first);
    expect(next.ended).toBe(false);
  });
});
