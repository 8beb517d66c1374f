import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { functions } from "../../functions/manifest.ts";
import { parseConfig } from "../../layers/chat/config.ts";
import {
  claimIdempotencyKey,
  type IdempotencyRequest,
  releaseIdempotencyKey,
} from "../../layers/chat/db/idempotency-store.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/** A claimed Idempotency-Key belongs to the request that claimed it, for as long as that request can run. */
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(4);
});
afterAll(() => db?.drop());

const req: IdempotencyRequest = { scope: "messages-post:claim-test", key: "k-claim", requestHash: "h" };
const opts = { ttlSeconds: 3600, lockSeconds: 30, waitMs: 0 };

describe("an Idempotency-Key claim", () => {
  it("a release gives back only its own claim, not the one of a retry that took the key over", async () => {
    const first = await claimIdempotencyKey(db.pool, req, opts);
    if (first.kind !== "claimed") throw new Error("expected a claim");
    // the first request's lock runs out (a crash, a stall) and its retry takes the key over
    await db.pool.query("UPDATE idempotency_records SET locked_until = now() - interval '1 second'");
    const retry = await claimIdempotencyKey(db.pool, req, opts);
    if (retry.kind !== "claimed") throw new Error("expected the retry to take the key over");
    expect(retry.token).not.toBe(first.token);
    // the first request fails late and releases: the retry's claim stays, so a third duplicate cannot run
    await releaseIdempotencyKey(db.pool, req, first.token);
    await expect(claimIdempotencyKey(db.pool, req, opts)).rejects.toMatchObject({
      code: "request_in_progress",
    });
    // the retry's own release works
    await releaseIdempotencyKey(db.pool, req, retry.token);
    expect((await db.pool.query("SELECT count(*)::int AS n FROM idempotency_records")).rows[0].n).toBe(0);
  });

  it("outlives the request holding it: the lock covers each idempotent function's timeout and a last statement", () => {
    const cfg = parseConfig({});
    for (const name of ["sessions-create", "messages-post"]) {
      const fn = functions.find((f) => f.name === name);
      if (!fn) throw new Error(`no function ${name}`);
      expect(fn.timeoutSeconds + cfg.DB_STATEMENT_TIMEOUT_MS / 1000, name).toBeLessThanOrEqual(
        cfg.IDEMPOTENCY_LOCK_SECONDS,
      );
    }
  });
});
