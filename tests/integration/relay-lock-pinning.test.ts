import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../layers/chat/config.ts";
import { buildPool } from "../../layers/chat/db/pool.ts";
import { relayOutbox } from "../../layers/chat/events/outbox-relay.ts";
import { oldestPendingAgeSeconds } from "../../layers/chat/events/outbox-store.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * What makes RDS Proxy pin a client connection to one database connection until the client disconnects (AWS,
 * "Avoiding pinning an RDS Proxy", PostgreSQL and all engines): SET and set_config, SQL-level prepared statements,
 * DISCARD, temporary objects, cursors, LISTEN, LOAD, nextval/setval, session-level advisory locks, and any statement
 * over 16 KB. The transaction-level advisory lock functions do not pin.
 */
const PINS =
  /^\s*(SET|RESET|PREPARE|EXECUTE|DEALLOCATE|DISCARD|DECLARE|LISTEN|LOAD)\b|\bTEMP(ORARY)?\s+(TABLE|SEQUENCE|VIEW)\b|\b(set_config|nextval|setval|pg_(try_)?advisory_lock(_shared)?)\s*\(/i;
const pins = (sql: string) => PINS.test(sql) || Buffer.byteLength(sql) > 16 * 1024;

/** The product's pool as the functions build it behind the proxy, recording what each open connection sent. */
function recordingPool(url: string) {
  const pool = buildPool(url, parseConfig({ DATABASE_PROXY: "true", DB_POOL_MAX: "3" }));
  const sent = new Map<pg.PoolClient, string[]>();
  pool.on("connect", (client) => {
    const log: string[] = [];
    sent.set(client, log);
    const query = client.query as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = function (this: pg.PoolClient, ...args: unknown[]) {
      const c = args[0] as string | { text: string };
      log.push(typeof c === "string" ? c : c.text);
      return query.apply(this, args);
    };
  });
  pool.on("remove", (client) => sent.delete(client));
  /** The statements that pinned connections the pool still keeps. */
  const pinnedKept = () => [...sent.values()].flatMap((log) => log.filter(pins));
  return { pool, pinnedKept };
}

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(4);
});
afterAll(() => db.drop());
beforeEach(() => db.pool.query("TRUNCATE outbox"));

const insertEvents = async (n: number) => {
  const session = randomUUID();
  for (let seq = 1; seq <= n; seq++) {
    const id = randomUUID();
    await db.pool.query(
      "INSERT INTO outbox (event_id, session_id, event_type, event) VALUES ($1, $2, 'chat.message.created', $3)",
      [id, session, JSON.stringify({ id, subject: session, data: { seq } })],
    );
  }
};
const opts = { batchSize: 5, batchBytes: 1_000_000, timeBudgetMs: 10_000 };

describe("the relay lock behind RDS Proxy", () => {
  it("leaves no connection in the pool that took it: the proxy would keep it pinned while the sandbox lives", async () => {
    await insertEvents(12);
    const { pool, pinnedKept } = recordingPool(db.url);
    try {
      for (let run = 0; run < 2; run++) {
        const published: unknown[] = [];
        const r = await relayOutbox(pool, async (events) => void published.push(...events), opts);
        expect(r).toMatchObject({ skipped: false, published: run === 0 ? 12 : 0 });
        await oldestPendingAgeSeconds(pool); // the handler's report, after the run
        await vi.waitFor(() => expect(pinnedKept()).toEqual([]));
      }
      // the statements' connections are reused as ever
      expect(pool.totalCount).toBeGreaterThan(0);
    } finally {
      await pool.end();
    }
  });

  it("nor the one that found it taken by another relay", async () => {
    await insertEvents(1);
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    const { pool, pinnedKept } = recordingPool(db.url);
    try {
      await other.query("SELECT pg_advisory_lock($1)", [0x63686174]);
      const r = await relayOutbox(pool, async () => {}, opts);
      expect(r).toMatchObject({ skipped: true });
      await vi.waitFor(() => expect(pinnedKept()).toEqual([]));
    } finally {
      await pool.end();
      await other.end();
    }
  });
});
