import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERASE, eraseSession } from "../../layers/chat/db/erase-store.ts";
import { claimIdempotencyKey } from "../../layers/chat/db/idempotency-store.ts";
import { chatEvent } from "../../layers/chat/events/cloudevents.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";
import { untilWaitingForLock } from "../helpers/lock-waits.ts";

/** What an erase removes, what it leaves, and how it meets a change committing at the same moment. */
let f: ChatFixture;
beforeAll(async () => {
  f = await chatFixture();
});
afterAll(() => f.close());

const erasedEvent = (id: string) =>
  chatEvent("chat.session.erased", id, new Date().toISOString(), { session_id: id });

/** A session created with an Idempotency-Key whose record has since expired (its key free to be taken over). */
async function createdWithExpiredKey(scope: string, key: string) {
  const idem = { scope, key, requestHash: "h" };
  const first = await f.chat.createSession({}, idem);
  await f.db.pool.query(
    "UPDATE idempotency_records SET expires_at = now() - interval '1 second' WHERE scope = $1",
    [scope],
  );
  return { idem, first };
}

describe("erasing a session", () => {
  it("takes the create's Idempotency-Key record with it: the key then creates a new session", async () => {
    const idem = { scope: "sessions-create:198.51.100.7", key: "erase-me-create-key-1", requestHash: "h" };
    const first = await f.chat.createSession({}, idem);
    const id = first.session.session_id;
    const replay = await f.chat.createSession({}, idem);
    expect(replay).toMatchObject({ replayed: true, session: { session_id: id } });
    await f.chat.eraseSession(await f.chat.authorize(id, first.token));
    const records = await f.db.pool.query(
      "SELECT count(*)::int AS n FROM idempotency_records WHERE scope = 'sessions-create:198.51.100.7'",
    );
    expect(records.rows[0].n).toBe(0);
    const again = await f.chat.createSession({}, idem);
    expect(again.replayed).toBeFalsy();
    expect(again.session.session_id).not.toBe(id);
    await expect(f.chat.authorize(again.session.session_id, again.token)).resolves.toBeDefined();
  });

  it("leaves a create's key record that another session took over (the key reused after it expired)", async () => {
    const { idem, first } = await createdWithExpiredKey(
      "sessions-create:198.51.100.8",
      "reused-create-key-0001",
    );
    const second = await f.chat.createSession({}, idem); // takes the expired record over
    expect(second.replayed).toBeFalsy();
    expect(second.session.session_id).not.toBe(first.session.session_id);
    await f.chat.eraseSession(await f.chat.authorize(first.session.session_id, first.token));
    const replay = await f.chat.createSession({}, idem);
    expect(replay).toMatchObject({ replayed: true, session: { session_id: second.session.session_id } });
  });

  it("leaves a create's key record another request is taking over, still in progress", async () => {
    const scope = "sessions-create:198.51.100.9";
    const { idem, first } = await createdWithExpiredKey(scope, "in-flight-create-key-01");
    const claim = await claimIdempotencyKey(f.db.pool, idem, {
      ttlSeconds: 86_400,
      lockSeconds: 30,
      waitMs: 0,
    });
    expect(claim.kind).toBe("claimed");
    await f.chat.eraseSession(await f.chat.authorize(first.session.session_id, first.token));
    const left = await f.db.pool.query("SELECT status FROM idempotency_records WHERE scope = $1", [scope]);
    expect(left.rows).toEqual([{ status: "in_progress" }]); // the new request's claim, not the erased session's
  });

  it("an erase that waited for a committing change removes that change's unsent events and key record too", async () => {
    const s = await f.chat.createSession({});
    const id = s.session.session_id;
    const post = await f.db.pool.connect();
    let erasing: Promise<boolean> | undefined;
    try {
      // a post on the session's locked path: row lock, then its events and Idempotency-Key record, then commit
      await post.query("BEGIN");
      await post.query("SELECT 1 FROM sessions WHERE session_id = $1 FOR UPDATE", [id]);
      await post.query(
        `INSERT INTO outbox (event_id, session_id, event_type, event)
         VALUES (gen_random_uuid(), $1, 'chat.message.created', '{"data":{"content":"secret"}}')`,
        [id],
      );
      await post.query(
        `INSERT INTO idempotency_records (scope, idempotency_key, request_hash, status, locked_until, expires_at)
         VALUES ('messages-post:' || $1, 'k', 'h', 'completed', now(), now() + interval '1 day')`,
        [id],
      );
      erasing = eraseSession(f.db.pool, id, erasedEvent(id));
      await untilWaitingForLock(f.db.pool);
      await post.query("COMMIT");
      expect(await erasing).toBe(true);
    } finally {
      post.release();
    }
    const left = await f.db.pool.query(
      `SELECT (SELECT array_agg(event_type) FROM outbox WHERE session_id = $1) AS events,
              (SELECT count(*)::int FROM idempotency_records WHERE scope = 'messages-post:' || $1) AS keys`,
      [id],
    );
    expect(left.rows[0]).toEqual({ events: ["chat.session.erased"], keys: 0 });
  });

  it("events already published stay for the outbox's retention; unsent ones go", async () => {
    const s = await f.chat.createSession({});
    const id = s.session.session_id;
    await f.chat.postMessage(await f.chat.authorize(id, s.token), "hello");
    // the creation's events went out; the post's did not
    await f.db.pool.query(
      `DELETE FROM outbox_pending WHERE id IN (
         SELECT id FROM outbox WHERE session_id = $1 AND event_type = 'chat.session.created')`,
      [id],
    );
    expect(await eraseSession(f.db.pool, id, erasedEvent(id))).toBe(true);
    const left = await f.db.pool.query(
      `SELECT event_type, NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id) AS published
         FROM outbox o WHERE session_id = $1 ORDER BY id`,
      [id],
    );
    expect(left.rows).toEqual([
      { event_type: "chat.session.created", published: true },
      { event_type: "chat.session.erased", published: false },
    ]);
  });

  it("finds the session's outbox rows through an index, never a scan of the whole outbox", async () => {
    const client = await f.db.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query("SET LOCAL enable_seqscan = off"); // a scan then only where no index can serve
      const event = erasedEvent("00000000-0000-4000-8000-000000000000");
      const plan = await client.query(`EXPLAIN (FORMAT JSON) ${ERASE}`, [
        event.subject,
        event.id,
        JSON.stringify(event),
        null,
      ]);
      const scans: string[] = [];
      const walk = (node: Record<string, unknown>) => {
        if (node["Relation Name"] === "outbox") scans.push(String(node["Node Type"]));
        for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
      };
      walk(plan.rows[0]["QUERY PLAN"][0].Plan);
      expect(scans.length).toBeGreaterThan(0);
      expect(scans).not.toContain("Seq Scan");
    } finally {
      await client.query("ROLLBACK");
      client.release();
    }
  });
});
