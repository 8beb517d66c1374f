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
    while (Date.now() < deadline) {
      const rows = await pendingBatch(pool, opts.batchSize);
      if (rows.length === 0) break;
      const events = rows.map((r) => r.event);
      try {
        await publish(events);
      } catch (err) {
        return {
          skipped: false,
          published,
          batches,
          error: err instanceof Error ? err.message : String(err),
        };
      }
      await markPublished(
        pool,
        events.map((e) => e.id),
      );
      published += rows.length;
      batches++;
      if (rows.length < opts.batchSize) break;
    }
    return { skipped: false, published, batches };
  });
  return ran ?? { skipped: true, published: 0, batches: 0 };
}

export const toRecords = (topic: string, events: CloudEvent[]) => events.map((e) => toKafkaRecord(topic, e));
