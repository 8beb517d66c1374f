import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_RETENTION_HOURS, MAX_SESSION_RETENTION_DAYS } from "../../layers/chat/config.ts";
import { runMaintenance } from "../../layers/chat/maintenance/maintenance.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

let f: ChatFixture;
beforeAll(async () => {
  // every time span at the largest value the config takes
  f = await chatFixture({
    redisUrl: null,
    env: {
      OUTBOX_RETENTION_HOURS: String(MAX_RETENTION_HOURS),
      CONSUMED_EVENTS_RETENTION_HOURS: String(MAX_RETENTION_HOURS),
      SESSION_RETENTION_DAYS: String(MAX_SESSION_RETENTION_DAYS),
      IDEMPOTENCY_TTL_SECONDS: "2147483647",
    },
  });
});
afterAll(() => f.close());

describe("the config's largest time spans", () => {
  it("are ones Postgres takes: a maintenance run and a post with an Idempotency-Key succeed", async () => {
    const s = await f.chat.createSession({});
    const auth = await f.chat.authorize(s.session.session_id, s.token);
    const scope = `messages-post:${s.session.session_id}`;
    const post = await f.chat.postMessage(auth, "hello", { scope, key: "k1", requestHash: "h" });
    expect(post.message.content).toBe("hello");
    const record = await f.db.pool.query(
      "SELECT expires_at > now() + interval '60 years' AS far FROM idempotency_records WHERE scope = $1",
      [scope],
    );
    expect(record.rows).toEqual([{ far: true }]);

    await expect(
      runMaintenance(f.db.pool, null, {
        outboxRetentionHours: f.config.OUTBOX_RETENTION_HOURS,
        consumedEventsRetentionHours: f.config.CONSUMED_EVENTS_RETENTION_HOURS,
        sessionRetentionDays: f.config.SESSION_RETENTION_DAYS,
      }),
    ).resolves.toMatchObject({ outboxPruned: 0, sessionsPurged: 0 });
  });

  it("stop short of what failed: a retention of 99,999,999 hours failed the whole run, every hour", async () => {
    await expect(
      runMaintenance(f.db.pool, null, {
        outboxRetentionHours: 99_999_999,
        consumedEventsRetentionHours: 336,
        sessionRetentionDays: 0,
      }),
    ).rejects.toThrow(/out of range/);
  });
});
