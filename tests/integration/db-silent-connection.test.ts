import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../layers/chat/config.ts";
import { buildPool } from "../../layers/chat/db/pool.ts";
import { withTransaction } from "../../layers/chat/db/transaction.ts";
import { type FreezingProxy, freezingProxy } from "../helpers/freezing-proxy.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * A connection that goes silent (a half-open socket: a network fault, a peer gone without a reset) must not
 * hang a request until the function's timeout, nor stay in the pool for the next one.
 */
let db: TestDatabase;
let proxy: FreezingProxy;
beforeAll(async () => {
  db = await createTestDatabase(2);
  proxy = await freezingProxy(new URL(db.url));
});
afterAll(async () => {
  await proxy.close();
  await db.drop();
});

describe("a database connection that goes silent", () => {
  // statement timeout 300 ms: the client gives up on a silent connection 1 s later
  const cfg = parseConfig({ DB_STATEMENT_TIMEOUT_MS: "300", DB_POOL_MAX: "1" });

  it("fails a query within the statement timeout plus a second, and the pool replaces the connection", async () => {
    const pool = buildPool(proxy.url, cfg);
    try {
      await pool.query("SELECT 1");
      proxy.freeze();
      const started = performance.now();
      await expect(pool.query("SELECT 2")).rejects.toThrow(/timeout/i);
      expect(performance.now() - started).toBeLessThan(3000);
      proxy.thaw();
      // the silent client was dropped: a new connection answers (the pool holds one at most)
      expect((await pool.query("SELECT 3 AS n")).rows[0].n).toBe(3);
    } finally {
      proxy.thaw();
      await pool.end();
    }
  });

  it("a transaction on it fails in bound too, and its client is not handed to the next request", async () => {
    const pool = buildPool(proxy.url, cfg);
    try {
      await pool.query("SELECT 1");
      const started = performance.now();
      const tx = withTransaction(pool, async (client) => {
        proxy.freeze();
        return client.query("SELECT 2");
      });
      await expect(tx).rejects.toThrow(/timeout/i);
      expect(performance.now() - started).toBeLessThan(5000);
      proxy.thaw();
      expect((await pool.query("SELECT 3 AS n")).rows[0].n).toBe(3);
    } finally {
      proxy.thaw();
      await pool.end();
    }
  });
});
