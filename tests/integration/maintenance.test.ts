import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMaintenance } from "../../layers/chat/maintenance/maintenance.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

let f: ChatFixture;
beforeAll(async () => {
  f = await chatFixture();
});
afterAll(() => f.close());

describe("maintenance", () => {
  it("purges sessions idle past the retention (with an erased event), prunes published events and expired idempotency records", async () => {
    const idle = await f.chat.createSession({});
    const active = await f.chat.createSession({});
    await f.chat.postMessage(await f.chat.authorize(idle.session.session_id, idle.token), "old news", {
      scope: `messages-post:${idle.session.session_id}`,
      key: "k1",
      requestHash: "h",
    });
    await f.db.pool.query(
      "UPDATE sessions SET updated_at = now() - interval '40 days' WHERE session_id = $1",
      [idle.session.session_id],
    );
    await f.db.pool.query(
      "UPDATE outbox SET published_at = now() - interval '48 hours' WHERE session_id = $1",
      [active.session.session_id],
    );
    await f.db.pool.query(
      `INSERT INTO idempotency_records (scope, idempotency_key, request_hash, status, locked_until, expires_at)
       VALUES ('sessions-create', 'expired', 'h', 'completed', now(), now() - interval '1 hour')`,
    );

    const result = await runMaintenance(f.db.pool, f.cache, {
      outboxRetentionHours: 24,
      sessionRetentionDays: 30,
    });

    expect(result).toMatchObject({ sessionsPurged: 1, outboxPruned: 2, idempotencyExpired: 1 });
    const left = await f.db.pool.query(
      `SELECT (SELECT count(*) FROM sessions WHERE session_id = $1)::int AS idle_sessions,
              (SELECT count(*) FROM messages WHERE session_id = $1)::int AS idle_messages,
              (SELECT array_agg(event_type) FROM outbox WHERE session_id = $1) AS idle_events,
              (SELECT count(*) FROM idempotency_records WHERE scope = 'messages-post:' || $1::text)::int AS idle_idem,
              (SELECT count(*) FROM sessions WHERE session_id = $2)::int AS active_sessions`,
      [idle.session.session_id, active.session.session_id],
    );
    expect(left.rows[0]).toEqual({
      idle_sessions: 0,
      idle_messages: 0,
      idle_events: ["chat.session.erased"],
      idle_idem: 0,
      active_sessions: 1,
    });
    await expect(f.chat.authorize(idle.session.session_id, idle.token)).rejects.toMatchObject({
      code: "unauthorized",
    });
  });

  it("purges nothing when retention is 0 (off)", async () => {
    const s = await f.chat.createSession({});
    await f.db.pool.query(
      "UPDATE sessions SET updated_at = now() - interval '400 days' WHERE session_id = $1",
      [s.session.session_id],
    );
    const result = await runMaintenance(f.db.pool, f.cache, {
      outboxRetentionHours: 24,
      sessionRetentionDays: 0,
    });
    expect(result.sessionsPurged).toBe(0);
    await expect(f.chat.authorize(s.session.session_id, s.token)).resolves.toBeDefined();
  });
});
