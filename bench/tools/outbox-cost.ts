/**
 * What the outbox costs Postgres per event: writing events (two per statement, as a post writes them) and
 * relaying them (the tree's own `relayOutbox`: fetch and mark, with a publish that returns at once, no Kafka).
 * Prints WAL bytes, Postgres CPU (every postgres process, from /proc: WAL writer and checkpointer included) and
 * time per event, for this tree's schema and code or another tree's (`--tree`, e.g. a `git worktree` of an older
 * commit), on a scratch database it creates and drops. Run it on an otherwise idle machine.
 *
 * Usage: node bench/tools/outbox-cost.ts [--tree DIR] [--writes N] [--batch N]
 *   --writes  statements of two events each (default 10000)
 *   --batch   the relay's batch (default 500)
 * Traffic stays on 127.0.0.1 (TEST_DATABASE_URL's server, default the local one).
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import type { chatEvent as ChatEvent } from "../../layers/chat/events/cloudevents.ts";
import type { relayOutbox as RelayOutbox } from "../../layers/chat/events/outbox-relay.ts";
import { cpuSnapshot } from "../lib/process-cpu.ts";
import { relayLikeEvents } from "../lib/relay-events.ts";

const { values } = parseArgs({
  options: {
    tree: { type: "string" },
    writes: { type: "string", default: "10000" },
    batch: { type: "string", default: "500" },
    help: { type: "boolean" },
  },
  strict: true,
});
if (values.help) {
  process.stdout.write("usage: node bench/tools/outbox-cost.ts [--tree DIR] [--writes N] [--batch N]\n");
  process.exit(0);
}
const writes = Math.min(Math.max(100, Number(values.writes)), 100_000);
const batch = Math.min(Math.max(1, Number(values.batch)), 10_000);
const tree = resolve(values.tree ?? resolve(import.meta.dirname, "../.."));
const { migrate } = (await import(`${tree}/layers/chat/db/migrate.ts`)) as {
  migrate: (url: string) => Promise<string[]>;
};
const { relayOutbox } = (await import(`${tree}/layers/chat/events/outbox-relay.ts`)) as {
  relayOutbox: typeof RelayOutbox;
};
const { chatEvent } = (await import(`${tree}/layers/chat/events/cloudevents.ts`)) as {
  chatEvent: typeof ChatEvent;
};

const server = new URL(process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test");
const name = `chat_outbox_cost_${process.pid}`;
const admin = new pg.Client({ connectionString: server.toString() });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const url = new URL(server);
url.pathname = `/${name}`;
const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
pool.on("error", () => {}); // the drop at the end ends connections the pool may still be closing
try {
  await migrate(url.toString());
  const events = relayLikeEvents(chatEvent, 2 * writes);
  const lsn = async () => (await pool.query("SELECT pg_current_wal_lsn()::text AS l")).rows[0].l as string;
  const walSince = async (from: string) =>
    Number((await pool.query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS d", [from])).rows[0].d);
  const pgCpuMs = () => cpuSnapshot(process.pid)?.byRole.postgres ?? Number.NaN;

  /** Runs `work`, returns per event: WAL bytes, Postgres CPU µs, elapsed µs. */
  async function measure(work: () => Promise<void>) {
    await pool.query("CHECKPOINT"); // full-page images after a checkpoint: each phase starts from one
    const [wal0, cpu0, t0] = [await lsn(), pgCpuMs(), performance.now()];
    await work();
    const elapsed = performance.now() - t0;
    const [wal, cpu] = [await walSince(wal0), pgCpuMs() - cpu0];
    const n = events.length;
    return { walBytes: wal / n, pgCpuUs: (cpu * 1000) / n, elapsedUs: (elapsed * 1000) / n };
  }

  const write = await measure(async () => {
    for (let i = 0; i < writes; i++) {
      const pair = events.slice(2 * i, 2 * i + 2);
      await pool.query({
        name: "outbox_cost_write",
        text: `INSERT INTO outbox (event_id, session_id, event_type, event)
               SELECT (e->>'id')::uuid, $1, e->>'type', e FROM jsonb_array_elements($2::jsonb) AS e`,
        values: [pair[0]?.subject, JSON.stringify(pair)],
      });
    }
  });
  let published = 0;
  const relay = await measure(async () => {
    const run = await relayOutbox(
      pool,
      async (batchEvents) => {
        published += batchEvents.length;
      },
      { batchSize: batch, batchBytes: 1_000_000, timeBudgetMs: 600_000 },
    );
    if (run.error) throw new Error(run.error);
  });
  if (published !== events.length) throw new Error(`relayed ${published} of ${events.length} events`);
  const row = (what: string, m: typeof write) =>
    `${what.padEnd(34)} ${m.walBytes.toFixed(0).padStart(6)} B WAL  ${m.pgCpuUs.toFixed(1).padStart(6)} µs Postgres CPU  ${m.elapsedUs.toFixed(1).padStart(6)} µs elapsed`;
  process.stdout.write(
    `tree ${tree}: ${events.length} events (${writes} writes of 2), relay batch ${batch}; per event:\n` +
      `${row("write (2 events per statement)", write)}\n${row("relay (fetch + mark, no Kafka)", relay)}\n`,
  );
} finally {
  await pool.end();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
