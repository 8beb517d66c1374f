import type pg from "pg";
import { type CloudEvent, toKafkaRecord } from "./cloudevents.ts";
import { dequeueExpired, markPublished, pendingBatch, withRelayLock } from "./outbox-store.ts";

/** Publishes a batch within timeoutMs, or rejects. */
export type PublishBatch = (events: CloudEvent[], timeoutMs: number) => Promise<void>;

export interface RelayResult {
  /** True when another relay held the lock and this run did nothing. */
  skipped: boolean;
  published: number;
  batches: number;
  /** Set when a publish or a Postgres step failed: what was not marked stays in the outbox for the next run. */
  error?: string;
}

export interface RelayOptions {
  batchSize: number;
  /** A batch's bound in bytes of events (`pendingBatch`): at least one event. */
  batchBytes: number;
  /** No publish starts after this, and none runs past it: the caller keeps the time to mark the last batch. */
  timeBudgetMs: number;
  /** The bound on one publish (default 10 s), cut to the time left. */
  maxPublishMs?: number;
}

/**
 * How long before its function ends a relay must stop publishing (`timeBudgetMs` = time left − this). After the
 * last publish it still waits, one after the other on the worst day, for the fetch in flight, the batch before's
 * mark and the last batch's mark, each bounded by the pool's query timeout, and a connection may have to be opened
 * first. With less, the function could end between Kafka's ack and the mark: duplicates, never a loss.
 */
export const relayReserveMs = (bounds: { queryTimeoutMs: number; connectTimeoutMs: number }) =>
  3 * bounds.queryTimeoutMs + bounds.connectTimeoutMs;

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Publishes unpublished outbox rows, oldest first, in batches, marking each batch after Kafka acked it.
 * A crash between the ack and the mark republishes that batch with the same event ids: duplicates, never loss.
 *
 * Pipelined: while batch n is being published, batch n+1 is fetched (leaving out the events in flight), and
 * batch n is marked while batch n+1 is published. Publishes stay strictly one after the other, and each fetch
 * still scans from the oldest unpublished row, so every session's events reach Kafka in order: an event that
 * committed late, with an older id, is in the next batch, ahead of anything of its session that follows it.
 * Any failure ends the run with `error` set (never an unhandled rejection); the next run starts over from the
 * oldest unpublished row.
 */
export async function relayOutbox(
  pool: pg.Pool,
  publish: PublishBatch,
  opts: RelayOptions,
): Promise<RelayResult> {
  const deadline = Date.now() + opts.timeBudgetMs;
  const maxPublishMs = opts.maxPublishMs ?? 10_000;
  const ran = await withRelayLock(pool, async (held): Promise<RelayResult> => {
    const statement = statementQueue(pool);
    let published = 0;
    let batches = 0;
    // outbox row ids fetched and not yet marked: kept out of the next fetch
    const inFlight = new Set<string>();
    let marking: Promise<void> = Promise.resolve();
    const failed = (err: unknown): RelayResult => ({
      skipped: false,
      published,
      batches,
      error: message(err),
    });
    try {
      let { rows, more } = await statement(() => pendingBatch(pool, opts.batchSize, opts.batchBytes));
      while (rows.length > 0) {
        const left = deadline - Date.now();
        if (left <= 0) break; // fetched, not published: the next run's
        // the lock went with its connection: another relay may hold it now, and two would reorder sessions
        if (!held()) return failed(new Error("the relay lock's connection was lost"));
        const rowIds = rows.map((r) => r.id);
        for (const id of rowIds) inFlight.add(id);
        const excluded = [...inFlight];
        const next = more
          ? statement(() => pendingBatch(pool, opts.batchSize, opts.batchBytes, excluded))
          : Promise.resolve({ rows: [], more: false });
        next.catch(() => {}); // awaited below, unless the publish fails first
        // Let the fetch reach Postgres before the publish: encoding a batch holds the event loop for milliseconds,
        // and the pool hands out its connection only on a later tick.
        if (more) await new Promise<void>((r) => setImmediate(r));
        await publish(
          rows.map((r) => r.event),
          Math.min(maxPublishMs, left),
        );
        published += rows.length;
        batches++;
        // the previous mark must be done before this one starts: one mark at a time, on their own connection
        await marking;
        marking = statement(() => markPublished(pool, rowIds)).then(() => {
          for (const id of rowIds) inFlight.delete(id);
        });
        marking.catch(() => {}); // awaited before the next mark or at the end, not left unhandled meanwhile
        ({ rows, more } = await next);
      }
      await marking;
      return { skipped: false, published, batches };
    } catch (err) {
      // a publish, a fetch or a mark failed (broker away, statement timeout, lost connection): what was not marked
      // goes out again. The mark of the batch before is let finish, on the lock: a run that ended (and let go of the
      // lock, or had its Lambda frozen) with a mark still running left its batch to the next run to publish again.
      await marking.catch(() => {});
      return failed(err);
    }
  });
  return ran ?? { skipped: true, published: 0, batches: 0 };
}

/**
 * For a stack without Kafka, where nothing will ever publish the queue: its events written over `retentionHours`
 * (OUTBOX_RETENTION_HOURS) ago leave it unpublished, oldest first, a batch per statement until none is left or the
 * budget is spent, and maintenance then prunes them as it prunes published ones. Queued for good, they kept every
 * message's text, an edit's earlier text and a regenerated reply's included, until their session was erased.
 */
export async function expireUnpublished(
  pool: pg.Pool,
  opts: { retentionHours: number; batchSize: number; timeBudgetMs: number },
): Promise<number> {
  const deadline = Date.now() + opts.timeBudgetMs;
  let expired = 0;
  for (;;) {
    const n = await dequeueExpired(pool, opts.retentionHours, opts.batchSize);
    expired += n;
    if (n < opts.batchSize || Date.now() >= deadline) return expired;
  }
}

/**
 * Runs the relay's fetches and marks: side by side when the pool has a connection for each beside the lock's,
 * else one after the other, each started once the one before has given its connection back. pg-pool's connect
 * timeout (DB_CONNECT_TIMEOUT_MS, 2 s) also bounds a wait for a free connection: a mark queued in the pool behind
 * a fetch slower than that failed, and every run of a slow day re-sent its batches without marking them.
 */
function statementQueue(pool: pg.Pool): <T>(run: () => Promise<T>) => Promise<T> {
  const max = (pool as pg.Pool & { options?: { max?: number } }).options?.max;
  if (max === undefined || max >= 3) return (run) => run();
  let tail: Promise<unknown> = Promise.resolve();
  return (run) => {
    const started = tail.then(run);
    tail = started.catch(() => {});
    return started;
  };
}

export const toRecords = (topic: string, events: CloudEvent[]) => events.map((e) => toKafkaRecord(topic, e));
