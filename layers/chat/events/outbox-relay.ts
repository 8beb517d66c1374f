import type pg from "pg";
import { type CloudEvent, toKafkaRecord } from "./cloudevents.ts";
import { markPublished, pendingBatch, withRelayLock } from "./outbox-store.ts";

export type PublishBatch = (events: CloudEvent[]) => Promise<void>;

export interface RelayResult {
  /** True when another relay held the lock and this run did nothing. */
  skipped: boolean;
  published: number;
  batches: number;
  /** Set when a batch failed: its events stay in the outbox for the next run. */
  error?: string;
}

/**
 * Publishes unpublished outbox rows, oldest first, in batches, marking each batch after Kafka acked it.
 * A crash between the ack and the mark republishes that batch with the same event ids: duplicates, never loss.
 *
 * Pipelined: while batch n is being published, batch n+1 is fetched (leaving out the events in flight), and
 * batch n is marked while batch n+1 is published. Publishes stay strictly one after the other, and each fetch
 * still scans from the oldest unpublished row, so every session's events reach Kafka in order: an event that
 * committed late, with an older id, is in the next batch, ahead of anything of its session that follows it.
 */
export async function relayOutbox(
  pool: pg.Pool,
  publish: PublishBatch,
  opts: { batchSize: number; timeBudgetMs: number },
): Promise<RelayResult> {
  const deadline = Date.now() + opts.timeBudgetMs;
  const ran = await withRelayLock(pool, async () => {
    let published = 0;
    let batches = 0;
    // outbox row ids fetched and not yet marked: kept out of the next fetch
    const inFlight = new Set<string>();
    let marking: Promise<void> = Promise.resolve();
    let rows = await pendingBatch(pool, opts.batchSize);
    try {
      while (rows.length > 0) {
        const ids = rows.map((r) => r.event.id);
        const rowIds = rows.map((r) => r.id);
        for (const id of rowIds) inFlight.add(id);
        const full = rows.length === opts.batchSize;
        const more = full && Date.now() < deadline;
        const next = more ? pendingBatch(pool, opts.batchSize, [...inFlight]) : Promise.resolve([]);
        next.catch(() => {}); // awaited below, unless the publish fails first
        try {
          await publish(rows.map((r) => r.event));
        } catch (err) {
          return {
            skipped: false,
            published,
            batches,
            error: err instanceof Error ? err.message : String(err),
          };
        }
        published += rows.length;
        batches++;
        // the previous mark must be done before this one starts: one mark at a time, on their own connection
        await marking;
        marking = markPublished(pool, ids).then(() => {
          for (const id of rowIds) inFlight.delete(id);
        });
        rows = await next;
      }
      return { skipped: false, published, batches };
    } finally {
      await marking;
    }
  });
  return ran ?? { skipped: true, published: 0, batches: 0 };
}

export const toRecords = (topic: string, events: CloudEvent[]) => events.map((e) => toKafkaRecord(topic, e));
