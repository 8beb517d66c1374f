import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";
import { migrate } from "../../layers/chat/db/migrate.ts";

/** The server the bench uses; each benchmark gets its own database on it, cloned from a migrated template. */
export const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
/**
 * Redis logical database 11, so the bench's rate-limit partitions (every request comes from 127.0.0.1) never
 * count against the tests of anyone sharing the server on db 0. The bench deletes exactly its own cache keys;
 * its rate-limit keys expire by themselves within the (1 s) window.
 */
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379/11";

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export interface BenchDatabases {
  template: string;
  /** A fresh database cloned from the template. */
  create(label: string): Promise<BenchDatabase>;
  /** Starts dropping a database in the background (DROP DATABASE waits for a checkpoint); dropAll awaits it. */
  release(db: BenchDatabase): void;
  /** Drops every database made by this run (and the template), and their cache keys. */
  dropAll(): Promise<void>;
}

export interface BenchDatabase {
  name: string;
  url: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

const runTag = `${process.pid.toString(36)}${randomBytes(3).toString("hex")}`;

export async function benchDatabases(): Promise<BenchDatabases> {
  const template = `bench_tpl_${runTag}`;
  await admin((c) => c.query(`CREATE DATABASE ${template}`));
  await migrate(withDatabase(ADMIN_URL, template));
  const live = new Map<string, BenchDatabase>();
  const dropping = new Set<Promise<void>>();
  let n = 0;
  return {
    template,
    async create(label) {
      const name = `bench_${runTag}_${n++}_${label.replace(/[^a-z0-9]/g, "")}`.slice(0, 63);
      // CREATE DATABASE … TEMPLATE fails while another session is connected to the template: retry briefly.
      for (let attempt = 0; ; attempt++) {
        try {
          await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${template}`));
          break;
        } catch (err) {
          if (attempt > 40 || !/being accessed by other users/.test((err as Error).message)) throw err;
          await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
        }
      }
      const url = withDatabase(ADMIN_URL, name);
      const pool = new pg.Pool({ connectionString: url, max: 4 });
      pool.on("error", () => {});
      const db: BenchDatabase = {
        name,
        url,
        pool,
        async drop() {
          if (!live.has(name)) return;
          live.delete(name);
          await deleteCacheKeys(pool).catch(() => {});
          await pool.end().catch(() => {});
          await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
        },
      };
      live.set(name, db);
      return db;
    },
    release(db) {
      const p = db.drop().catch(() => {});
      dropping.add(p);
    },
    async dropAll() {
      await Promise.all([...live.values()].map((db) => db.drop().catch(() => {})));
      await Promise.all(dropping);
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`));
    },
  };
}

/** Deletes the cache entries of every session in this database (and of sessions erased from it). */
async function deleteCacheKeys(pool: pg.Pool): Promise<void> {
  const res = await pool.query(
    "SELECT session_id::text AS id FROM sessions UNION SELECT DISTINCT session_id::text FROM outbox",
  );
  const ids = res.rows.map((r) => r.id as string);
  if (ids.length === 0) return;
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on("error", () => {});
  try {
    await redis.connect();
    for (let i = 0; i < ids.length; i += 500) {
      const keys = ids.slice(i, i + 500).flatMap((id) => [`chat:{${id}}:s`, `chat:{${id}}:h`]);
      await redis.del(...keys);
    }
  } finally {
    redis.disconnect();
  }
}

/** Server facts for the report. */
export async function serverInfo(): Promise<Record<string, string>> {
  const pgInfo = await admin(async (c) => {
    const v = await c.query("SHOW server_version");
    const s = await c.query(
      "SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit','fsync','shared_buffers','max_connections','autovacuum')",
    );
    return {
      postgres: v.rows[0].server_version as string,
      ...Object.fromEntries(s.rows.map((r) => [`pg_${r.name}`, String(r.setting)])),
    };
  });
  const redis = new Redis(REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
  redis.on("error", () => {});
  try {
    await redis.connect();
    const info = await redis.info("server");
    const version = /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? "unknown";
    return { ...pgInfo, redis: version };
  } finally {
    redis.disconnect();
  }
}

/**
 * Fresh planner statistics after the bench added rows (sessions), as autovacuum keeps them in production; the
 * machines here may run Postgres with autovacuum off. ANALYZE also invalidates plans cached on the old statistics:
 * without it, a connection whose first foreign-key check ran while `sessions` was nearly empty keeps a sequential
 * scan for that check (≈ 0.8 ms per post once the table holds thousands of sessions), on whichever connections
 * happened to plan it early.
 */
export async function analyze(pool: { query: (sql: string) => Promise<unknown> }): Promise<void> {
  await pool.query("ANALYZE");
}

/** Flush dirty pages before a measured segment so a checkpoint does not land in the middle of it. */
export async function checkpoint(): Promise<void> {
  await admin((c) => c.query("CHECKPOINT"));
}
