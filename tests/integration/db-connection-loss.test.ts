import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../layers/chat/config.ts";
import { migrate } from "../../layers/chat/db/migrate.ts";
import { buildPool } from "../../layers/chat/db/pool.ts";
import { withTransaction } from "../../layers/chat/db/transaction.ts";
import { relayOutbox } from "../../layers/chat/events/outbox-relay.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";
import { ADMIN_URL, withDatabase } from "../helpers/global-database.ts";

/**
 * Connections the server drops while a client is checked out must fail the work, never the process (pg emits
 * `error` on such a client, an uncaught exception without a listener: vitest reports it and fails this file);
 * statements the server merely refuses must not cost a connection.
 */
let f: ChatFixture;
let pool: pg.Pool;
beforeAll(async () => {
  f = await chatFixture({ redisUrl: null });
  pool = buildPool(f.db.url, parseConfig({ DB_POOL_MAX: "3", DB_STATEMENT_TIMEOUT_MS: "300" }));
});
afterAll(async () => {
  await pool.end();
  await f.close();
});
afterEach(() => vi.restoreAllMocks());

async function terminate(pid: number): Promise<void> {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query("SELECT pg_terminate_backend($1)", [pid]);
  } finally {
    await admin.end();
  }
}

const backendPid = async (q: { query: pg.Pool["query"] }) =>
  (await q.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves once `pid` has left pg_stat_activity (pg_terminate_backend only signals it). */
async function untilBackendGone(pid: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const r = await f.db.pool.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [pid]);
    if (r.rowCount === 0) return;
    await sleep(10);
  }
  throw new Error(`backend ${pid} was still there 5 s after its termination`);
}

/** How many new connections pg opens (in this process) while `work` runs. */
async function connectionsDuring(work: () => Promise<unknown>): Promise<number> {
  const connect = vi.spyOn(pg.Client.prototype, "connect");
  await work();
  const n = connect.mock.calls.length;
  connect.mockRestore();
  return n;
}

describe("statements the server refuses keep their connection", () => {
  it("errors and statement timeouts through pool.query open no new connection", async () => {
    await Promise.all([1, 2, 3].map(() => pool.query("SELECT 1"))); // three connections, all idle now
    const opened = await connectionsDuring(async () => {
      for (let i = 0; i < 10; i++) {
        await expect(pool.query("SELECT 1 / 0")).rejects.toMatchObject({ code: "22012" });
        await expect(pool.query("SELECT pg_sleep(2)")).rejects.toMatchObject({ code: "57014" });
      }
      expect((await pool.query("SELECT 7 AS n")).rows[0].n).toBe(7);
    });
    expect(opened).toBe(0);
    expect(pool.totalCount).toBe(3);
  });

  it("a connection the server ended is still replaced", async () => {
    const client = await pool.connect();
    const pid = await backendPid(client);
    client.release();
    // every idle connection goes, so the next query cannot pick a surviving one
    const others = await Promise.all(Array.from({ length: pool.idleCount }, () => pool.connect()));
    const pids = await Promise.all(others.map(backendPid));
    for (const c of others) c.release();
    for (const p of new Set([pid, ...pids])) await terminate(p);
    await sleep(100);
    const opened = await connectionsDuring(async () => {
      expect((await pool.query("SELECT 8 AS n")).rows[0].n).toBe(8);
    });
    expect(opened).toBe(1);
  });

  it("replaying an Idempotency-Key (its insert fails on the key, by design) opens no connection", async () => {
    const created = await f.chat.createSession({});
    const id = created.session.session_id;
    const idem = { scope: `messages-post:${id}`, key: "k-replay", requestHash: "h" };
    const first = await f.chat.postMessage(await f.chat.authorize(id, created.token), "once", idem);
    const auth = await f.chat.authorize(id, created.token);
    const opened = await connectionsDuring(async () => {
      for (let i = 0; i < 10; i++)
        expect(await f.chat.postMessage(auth, "once", idem)).toEqual({ ...first, replayed: true });
    });
    expect(opened).toBe(0);
  });
});

describe("a connection lost while checked out", () => {
  it("fails the transaction whose statement was running, and the pool drops the client", async () => {
    const tx = withTransaction(pool, async (client) => {
      const pid = await backendPid(client);
      setTimeout(() => void terminate(pid), 100);
      await client.query("SELECT pg_sleep(0.25)"); // within the 300 ms statement timeout
      return client.query("SELECT pg_sleep(0.25)");
    });
    await expect(tx).rejects.toThrow(/terminat/i);
    await sleep(50);
    expect((await pool.query("SELECT 9 AS n")).rows[0].n).toBe(9);
  });

  it("fails a transaction lost between statements at its next statement", async () => {
    const tx = withTransaction(pool, async (client) => {
      await terminate(await backendPid(client));
      await sleep(100); // the connection is gone while no statement runs
      return client.query("SELECT 1");
    });
    await expect(tx).rejects.toThrow();
    expect((await pool.query("SELECT 10 AS n")).rows[0].n).toBe(10);
  });

  it("stops the relay once its lock's connection is gone: another relay may hold the lock by then", async () => {
    await f.db.pool.query("TRUNCATE outbox");
    const session = randomUUID();
    for (let seq = 1; seq <= 20; seq++) {
      const id = randomUUID();
      await f.db.pool.query(
        "INSERT INTO outbox (event_id, session_id, event_type, event) VALUES ($1, $2, 'chat.message.created', $3)",
        [id, session, JSON.stringify({ id, subject: session, data: { seq } })],
      );
    }
    let batches = 0;
    const r = await relayOutbox(
      pool,
      async () => {
        if (batches++ > 0) return;
        const lock = await f.db.pool.query(
          "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted",
          [0x63686174],
        );
        await terminate(lock.rows[0].pid);
        // The backend gone, its socket's close is queued for the relay's client: a turn of the loop delivers it
        // (a fixed 100 ms alone was not always enough on a loaded machine).
        await untilBackendGone(lock.rows[0].pid);
        await sleep(100);
      },
      { batchSize: 5, batchBytes: 1_000_000, timeBudgetMs: 10_000 },
    );
    expect(r.error).toMatch(/lock's connection was lost/);
    expect(r.published).toBe(5);
    // what it did not publish is still there for the next run, which takes the lock again
    const next = await relayOutbox(pool, async () => {}, {
      batchSize: 5,
      batchBytes: 1_000_000,
      timeBudgetMs: 10_000,
    });
    expect(next).toMatchObject({ skipped: false, published: 15 });
  });

  it("fails a migration whose connection is lost, and the next run applies it", async () => {
    const name = `chat_m_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
    const dir = mkdtempSync(join(tmpdir(), "migrations-"));
    writeFileSync(join(dir, "1_slow.sql"), "-- Up Migration\nSELECT pg_sleep(1);\n-- Down Migration\n");
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
      const url = withDatabase(ADMIN_URL, name);
      const running = migrate(url, dir);
      running.catch(() => {}); // asserted below, once its statement was cut
      let pid: number | undefined;
      for (let i = 0; i < 100 && pid === undefined; i++) {
        await sleep(20);
        const r = await admin.query(
          "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query LIKE '%pg_sleep(1)%' AND pid <> pg_backend_pid()",
          [name],
        );
        pid = r.rows[0]?.pid;
      }
      expect(pid).toBeDefined();
      await terminate(pid as number);
      await expect(running).rejects.toThrow(/terminat/i);
      await sleep(50);
      expect(await migrate(url, dir)).toEqual(["1_slow"]);
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
