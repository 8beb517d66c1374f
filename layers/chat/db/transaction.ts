import type pg from "pg";

/** Runs `work` in one transaction on one pooled client: COMMIT on success, ROLLBACK on any error. */
export async function withTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  // A client whose ROLLBACK failed (a lost or silent connection) may be mid-transaction or mid-query: the pool
  // must close it, not hand it to the next request.
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    const result = await work(client);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    await client.query("ROLLBACK").catch((rollbackErr: Error) => {
      broken = rollbackErr;
    });
    throw err;
  } finally {
    client.release(broken);
  }
}
