import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * Each Lambda sandbox stamps changes with its own clock. Here the same service plays sandboxes whose clocks are
 * behind the one that made the previous change (Date alone is faked: Postgres, Redis and timers run as usual).
 */
let f: ChatFixture;
beforeAll(async () => {
  f = await chatFixture();
});
afterAll(() => f.close());
afterEach(() => {
  vi.useRealTimers();
});

const clockAt = (ms: number) => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(ms);
};

describe("a session changed from sandboxes whose clocks disagree", () => {
  it("never stamps a change before the session's previous one", async () => {
    const t0 = Date.now();
    clockAt(t0);
    const created = await f.chat.createSession({});
    const id = created.session.session_id;
    const auth = () => f.chat.authorize(id, created.token);
    const stamps = [created.session.updated_at];
    const seen = async () => stamps.push(f.chat.getSession(await auth()).updated_at);

    clockAt(t0 - 2000); // a sandbox 2 s behind the one that created the session
    const first = await f.chat.postMessage(await auth(), "first");
    await seen();
    clockAt(t0 - 3000);
    await f.chat.editMessage(await auth(), {
      message_id: first.message.message_id,
      content: "first, edited",
    });
    await seen();
    clockAt(t0 - 4000);
    const second = await f.chat.postMessage(await auth(), "second");
    await seen();
    clockAt(t0 - 5000);
    await f.chat.deleteMessage(await auth(), second.reply.message_id);
    await seen();
    vi.useRealTimers();

    // updated_at moves forward at every change, as clients polling GET /sessions/{id} rely on
    for (let i = 1; i < stamps.length; i++)
      expect(Date.parse(stamps[i] as string)).toBeGreaterThan(Date.parse(stamps[i - 1] as string));
    const session = await f.db.pool.query(
      "SELECT created_at <= updated_at AS ordered FROM sessions WHERE session_id = $1",
      [id],
    );
    expect(session.rows[0].ordered).toBe(true);
    // a later seq is never created earlier; an edit or a delete never precedes the message's creation
    const messages = await f.db.pool.query(
      `SELECT seq, created_at >= lag(created_at, 1, created_at) OVER (ORDER BY seq) AS after_previous,
              coalesce(edited_at >= created_at, true) AS edited_after,
              coalesce(deleted_at >= created_at, true) AS deleted_after
         FROM messages WHERE session_id = $1 ORDER BY seq`,
      [id],
    );
    expect(messages.rows).toEqual(
      [1, 2, 3, 4, 5].map((seq) => ({ seq, after_previous: true, edited_after: true, deleted_after: true })),
    );
    // the events' times follow the session's order too
    const events = await f.db.pool.query(
      "SELECT (event->>'time')::timestamptz AS t FROM outbox WHERE session_id = $1 ORDER BY id",
      [id],
    );
    const times = events.rows.map((r) => Date.parse(r.t as string));
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });
});
