import type pg from "pg";
import { isStuckBehindUnanswered, noteIfUnanswered, withClient } from "./pooled-client.ts";

/**
 * Runs `work` in one transaction on one pooled client: COMMIT on success, ROLLBACK on any error. A COMMIT sent and
 * never answered may have committed (isUnanswered); a failure before it never did.
 */
export function withTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withClient(pool, async (client, checkout) => {
    try {
      await client.query("BEGIN");
      const result = await work(client);
      await client.query("COMMIT").catch((err: unknown) => {
        noteIfUnanswered(err);
        throw err;
      });
      return result;
    } catch (err) {
      // A statement the server never answered (the COMMIT, or one of work's) still holds the connection: a ROLLBACK
      // would queue behind it and wait out a whole query bound more, which put the 503 of an erase or a delete whose
      // COMMIT went unanswered past its function's 10 s timeout at the defaults (2 × 6 s). Closing the connection
      // rolls the transaction back on the server instead.
      if (isStuckBehindUnanswered(err)) checkout.markBroken(err as Error);
      // A client whose ROLLBACK failed (a lost or silent connection) may be mid-transaction or mid-query: the
      // pool must close it, not hand it to the next request.
      else if (!checkout.lost) await client.query("ROLLBACK").catch((e: Error) => checkout.markBroken(e));
      throw err;
    }
  });
}
