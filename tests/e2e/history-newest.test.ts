import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Message } from "../../layers/chat/chat/types.ts";
import { type RunnerFixture, startRunnerFixture } from "../helpers/runner-fixture.ts";

/**
 * A chat UI opens on the newest messages, scrolls back, and polls. A poll is one request: the page's ETag is the
 * session's state, and If-None-Match gets 304 until a post, an edit or a delete moves it.
 *
 * It opens on the newest messages and scrolls back. The history is paged forward only (`after_seq`), but a
 * session's seq numbers are gapless (a deleted message keeps its seq), so `after_seq = last_seq - N` is the newest
 * N seqs in one request, and each older page counts back the same way (README, "What a client should know").
 */
interface Page {
  messages: Message[];
  next_after_seq: number | null;
}

let fx: RunnerFixture;
let sessionId: string;
let token: string;
const posted: { user: Message; bot: Message }[] = [];

beforeAll(async () => {
  fx = await startRunnerFixture();
  const created = await fx.call<{ session: { session_id: string }; token: string }>(
    "POST",
    "/sessions/create",
    {
      json: {},
    },
  );
  sessionId = created.body.session.session_id;
  token = created.body.token;
  for (let i = 0; i < 10; i++) {
    const res = await fx.call<{ message: Message; reply: Message }>("POST", "/messages/post", {
      token,
      json: { session_id: sessionId, content: `message ${i}` },
    });
    expect(res.status, res.text).toBe(201);
    posted.push({ user: res.body.message, bot: res.body.reply });
  }
  // one deleted among the newest: its seq stays taken, so a page counted back holds one message fewer
  const gone = posted[8]?.user.message_id;
  const del = await fx.call("DELETE", "/messages/delete", {
    token,
    json: { session_id: sessionId, message_id: gone },
  });
  expect(del.status, del.text).toBe(200);
}, 60_000);
afterAll(async () => {
  await fx?.close();
});

const page = async (afterSeq: number, limit: number) => {
  const res = await fx.call<Page>(
    "GET",
    `/sessions/${sessionId}/messages?after_seq=${afterSeq}&limit=${limit}`,
    {
      token,
    },
  );
  expect(res.status, res.text).toBe(200);
  return res.body;
};

describe("the newest messages without walking the history", () => {
  it("takes last_seq from the session; after_seq = last_seq - N is the newest N seqs, older pages count back", async () => {
    const session = await fx.call<{ last_seq: number; message_count: number }>(
      "GET",
      `/sessions/${sessionId}`,
      {
        token,
      },
    );
    const lastSeq = session.body.last_seq;
    // the welcome, then 10 turns of two: seq 1..21, with the reply of the last post the newest
    expect(lastSeq).toBe(posted[9]?.bot.seq);
    expect(lastSeq).toBe(21);
    expect(session.body.message_count).toBe(20);

    const newest = await page(lastSeq - 6, 6);
    expect(newest.messages.map((m) => m.seq)).toEqual([16, 17, 19, 20, 21]); // 18 (message 8) deleted
    expect(newest.next_after_seq).toBeNull();

    const older = await page(lastSeq - 12, 6);
    expect(older.messages.map((m) => m.seq)).toEqual([10, 11, 12, 13, 14, 15]);
    expect(older.messages.map((m) => m.content)).toContain("message 5");
    // the page stops at the limit and says where the next (newer) one starts: where the client already is
    expect(older.next_after_seq).toBe(15);
  });
});

describe("a poll with If-None-Match", () => {
  const poll = (etag?: string) =>
    fx.call<Page>("GET", `/sessions/${sessionId}/messages?after_seq=21`, {
      token,
      headers: etag ? { "if-none-match": etag } : {},
    });

  it("gets 304 with no body while nothing changed, and the new page once a post, an edit or a delete did", async () => {
    const first = await poll();
    expect(first.status).toBe(200);
    let etag = first.headers.get("etag") ?? "";
    expect(etag).toMatch(/^W\/"\d+"$/);
    const same = await poll(etag);
    expect(same.status).toBe(304);
    expect(same.text).toBe("");
    expect(same.headers.get("etag")).toBe(etag);
    expect(same.headers.get("cache-control")).toBe("no-store");

    const changes = [
      () =>
        fx.call<{ message: Message }>("POST", "/messages/post", {
          token,
          json: { session_id: sessionId, content: "one more" },
        }),
      () =>
        fx.call("PUT", "/messages/edit", {
          token,
          json: { session_id: sessionId, message_id: posted[9]?.user.message_id, content: "edited" },
        }),
      () =>
        fx.call("DELETE", "/messages/delete", {
          token,
          json: { session_id: sessionId, message_id: posted[7]?.user.message_id },
        }),
    ];
    for (const change of changes) {
      const res = await change();
      expect(res.status, res.text).toBeLessThan(300);
      const after = await poll(etag);
      expect(after.status, "a change must end the 304s").toBe(200);
      const next = after.headers.get("etag") ?? "";
      expect(next).not.toBe(etag);
      expect((await poll(next)).status).toBe(304);
      etag = next;
    }
    // the post's two messages are what a poll from seq 21 gets
    const page = await poll();
    expect(page.body.messages.map((m) => m.seq)).toEqual([22, 23]);
  });
});
