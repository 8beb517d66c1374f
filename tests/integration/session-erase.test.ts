import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERASE, ERASE_PERSONAL_EVENTS, eraseSession, LOCK_EVENTS } from "../../layers/chat/db/erase-store.ts";
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

  it("takes its queue rows in id order, as the marks do: an erase and a mark of the same events both finish", async () => {
    const s = await f.chat.createSession({});
    const id = s.session.session_id;
    const auth = () => f.chat.authorize(id, s.token);
    const first = await f.chat.postMessage(await auth(), "one");
    await f.chat.deleteMessage(await auth(), first.reply.message_id); // a queued event that carries no text…
    await f.chat.postMessage(await auth(), "two"); // …below queued ones that do
    const queued = await f.db.pool.query(
      `SELECT p.id::text AS id, o.event_type FROM outbox_pending p JOIN outbox o USING (id)
        WHERE p.session_id = $1 ORDER BY p.id`,
      [id],
    );
    const deleted = queued.rows.findIndex((r) => r.event_type === "chat.message.deleted");
    const [held, next] = [queued.rows[deleted]?.id, queued.rows[deleted + 1]?.id];
    expect(next).toBeDefined();
    // a relay's mark of these events, in id order: it holds the deleted event's queue row and goes on to the next
    const mark = await f.db.pool.connect();
    try {
      await mark.query("BEGIN");
      await mark.query("DELETE FROM outbox_pending WHERE id = $1", [held]);
      const erasing = eraseSession(f.db.pool, id, erasedEvent(id));
      erasing.catch(() => {}); // awaited below; a deadlock may fail it first
      await untilWaitingForLock(f.db.pool);
      await mark.query("DELETE FROM outbox_pending WHERE id = $1", [next]); // a deadlock if the erase held it
      await mark.query("COMMIT");
      expect(await erasing).toBe(true);
    } finally {
      await mark.query("ROLLBACK").catch(() => {});
      mark.release();
    }
    const left = await f.db.pool.query(
      "SELECT array_agg(event_type ORDER BY id) AS events FROM outbox WHERE session_id = $1",
      [id],
    );
    expect(left.rows[0].events).toEqual(["chat.message.deleted", "chat.session.erased"]);
  });

  it("takes events before their queue rows, as the previous release's marks do: an erase during a deploy finishes", async () => {
    const s = await f.chat.createSession({});
    const other = await f.chat.createSession({});
    const idsOf = async (sessionId: string) =>
      (
        await f.db.pool.query("SELECT id::text AS id FROM outbox WHERE session_id = $1 ORDER BY id", [
          sessionId,
        ])
      ).rows.map((r) => r.id as string);
    const [first] = await idsOf(s.session.session_id);
    const [later] = await idsOf(other.session.session_id);
    const [holder, oldMark] = [await f.db.pool.connect(), await f.db.pool.connect()];
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT 1 FROM outbox WHERE id = $1 FOR UPDATE", [later]);
      // the previous release's mark: it updates the events (this session's first, then the held one), and its
      // trigger then deletes their queue rows
      await oldMark.query("BEGIN");
      const marking = oldMark.query("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", [
        [first, later],
      ]);
      marking.catch(() => {});
      await untilWaitingForLock(f.db.pool, "", 1);
      const erasing = eraseSession(f.db.pool, s.session.session_id, erasedEvent(s.session.session_id));
      erasing.catch(() => {});
      await untilWaitingForLock(f.db.pool, "", 2);
      await holder.query("COMMIT");
      await marking; // a deadlock if the erase held the queue row the mark's trigger deletes
      await oldMark.query("COMMIT");
      expect(await erasing).toBe(true);
    } finally {
      for (const c of [holder, oldMark]) {
        await c.query("ROLLBACK").catch(() => {});
        c.release();
      }
    }
    const left = await f.db.pool.query(
      "SELECT array_agg(event_type) AS events FROM outbox WHERE session_id = $1",
      [s.session.session_id],
    );
    expect(left.rows[0].events).toEqual(["chat.session.erased"]);
  });

  it("takes every event that carries what its user sent, published or not; only published deleted events stay", async () => {
    const s = await f.chat.createSession({ user_id: "erase-user-id" });
    const id = s.session.session_id;
    const auth = () => f.chat.authorize(id, s.token);
    const turn = await f.chat.postMessage(await auth(), "erase-text-one");
    await f.chat.editMessage(await auth(), {
      message_id: turn.message.message_id,
      content: "erase-text-two",
    });
    await f.chat.deleteMessage(await auth(), turn.reply.message_id);
    // everything so far went out; the next post's events did not
    await f.db.pool.query("DELETE FROM outbox_pending WHERE session_id = $1", [id]);
    await f.chat.postMessage(await auth(), "erase-text-three");
    // another session's published events, text included, are not the erase's business
    const other = await f.chat.createSession({});
    const otherId = other.session.session_id;
    await f.chat.postMessage(await f.chat.authorize(otherId, other.token), "erase-text-kept");
    await f.db.pool.query("DELETE FROM outbox_pending WHERE session_id = $1", [otherId]);
    const otherBefore = await f.db.pool.query(
      "SELECT id, event FROM outbox WHERE session_id = $1 ORDER BY id",
      [otherId],
    );

    expect(await eraseSession(f.db.pool, id, erasedEvent(id))).toBe(true);
    const left = await f.db.pool.query(
      `SELECT event_type, NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id) AS published
         FROM outbox o WHERE session_id = $1 ORDER BY id`,
      [id],
    );
    expect(left.rows).toEqual([
      { event_type: "chat.message.deleted", published: true },
      { event_type: "chat.session.erased", published: false },
    ]);
    const text = await f.db.pool.query(
      "SELECT count(*)::int AS n FROM outbox WHERE event::text ~ '(erase-text-(one|two|three)|erase-user-id)'",
    );
    expect(text.rows[0].n).toBe(0);
    const queued = await f.db.pool.query(
      "SELECT count(*)::int AS n FROM outbox_pending WHERE session_id = $1",
      [id],
    );
    expect(queued.rows[0].n).toBe(1);
    const otherAfter = await f.db.pool.query(
      "SELECT id, event FROM outbox WHERE session_id = $1 ORDER BY id",
      [otherId],
    );
    expect(otherAfter.rows).toEqual(otherBefore.rows);
    expect(otherAfter.rows.length).toBe(4);
  });

  it("finds the session's outbox rows and key records through indexes, never a scan of the whole outbox", async () => {
    const client = await f.db.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query("SET LOCAL enable_seqscan = off"); // a scan then only where no index can serve
      const event = erasedEvent("00000000-0000-4000-8000-000000000000");
      const plans = [
        await client.query(`EXPLAIN (FORMAT JSON) ${ERASE}`, [
          event.subject,
          event.id,
          JSON.stringify(event),
          null,
        ]),
        await client.query(`EXPLAIN (FORMAT JSON) ${ERASE_PERSONAL_EVENTS}`, [event.subject]),
        await client.query(`EXPLAIN (FORMAT JSON) ${LOCK_EVENTS}`, [event.subject]),
      ];
      const indexes: string[] = [];
      for (const plan of plans) {
        const scans: string[] = [];
        const walk = (node: Record<string, unknown>) => {
          if (node["Relation Name"] === "outbox") scans.push(String(node["Node Type"]));
          if (typeof node["Index Name"] === "string") indexes.push(node["Index Name"]);
          for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
        };
        walk(plan.rows[0]["QUERY PLAN"][0].Plan);
        expect(scans.length).toBeGreaterThan(0);
        expect(scans).not.toContain("Seq Scan");
      }
      // the events that carry what the user sent: by session (created) and by message id (created, edited); the
      // create's Idempotency-Key record by the session it made
      expect(indexes).toEqual(
        expect.arrayContaining([
          "outbox_session_created_idx",
          "outbox_message_idx",
          "idempotency_records_session_idx",
        ]),
      );
    } finally {
      await client.query("ROLLBACK");
      client.release();
    }
  });
});
