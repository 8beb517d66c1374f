import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AuthorizedSession, ChatService } from "../../layers/chat/chat/chat-service.ts";
import { ChatError } from "../../layers/chat/chat/errors.ts";
import { builtinResponder } from "../../layers/chat/responders/builtin-responder.ts";
import { type ChatFixture, chatFixture, rowCounts } from "../helpers/chat-fixture.ts";

let f: ChatFixture;
beforeAll(async () => {
  f = await chatFixture();
});
afterAll(() => f.close());

async function newSession() {
  const created = await f.chat.createSession({ user_id: "u1", metadata: { plan: "free" } });
  const auth = () => f.chat.authorize(created.session.session_id, created.token);
  return { created, auth, id: created.session.session_id };
}

const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    if (err instanceof ChatError) return err.code;
    throw err;
  }
  throw new Error("expected a ChatError");
};

describe("createSession", () => {
  it("starts with the welcome message at seq 1 and three suggestions, and stores only the token's hash", async () => {
    const { created, id } = await newSession();
    expect(created.messages).toHaveLength(1);
    expect(created.messages[0]).toMatchObject({ seq: 1, role: "assistant", version: 1, session_id: id });
    expect(created.suggestions).toHaveLength(3);
    expect(created.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const row = await f.db.pool.query(
      "SELECT token_hash::text AS h, last_seq FROM sessions WHERE session_id = $1",
      [id],
    );
    expect(row.rows[0].last_seq).toBe(1);
    expect(row.rows[0].h).not.toContain(Buffer.from(created.token).toString("hex"));
    const event = await f.db.pool.query(
      "SELECT event->'data' AS data FROM outbox WHERE session_id = $1 AND event_type = 'chat.session.created'",
      [id],
    );
    expect(event.rows.map((r) => r.data)).toEqual([{ session_id: id, user_id: "u1" }]);
  });

  it("writes the new session's history through to the cache: its first page is a cache hit", async () => {
    const { created, auth } = await newSession();
    const page = await f.chat.history(await auth(), 0, 50);
    expect(page).toMatchObject({ messages: created.messages, fromCache: true });
  });

  it("keeps the welcome's suggestions as the session's, in the cache and in Postgres", async () => {
    const { created, auth, id } = await newSession();
    expect(f.chat.suggestions(await auth())).toEqual(created.suggestions);
    const row = await f.db.pool.query("SELECT suggestions FROM sessions WHERE session_id = $1", [id]);
    expect(row.rows[0].suggestions).toEqual(created.suggestions);
  });
});

describe("authorize", () => {
  it("rejects a missing or wrong token with unauthorized and another session's token with session_not_found", async () => {
    const a = await newSession();
    const b = await newSession();
    expect(await codeOf(f.chat.authorize(a.id, undefined))).toBe("unauthorized");
    expect(await codeOf(f.chat.authorize(a.id, "not-a-token"))).toBe("unauthorized");
    expect(await codeOf(f.chat.authorize(a.id, b.created.token))).toBe("session_not_found");
    expect(await codeOf(f.chat.authorize("00000000-0000-4000-8000-000000000000", a.created.token))).toBe(
      "session_not_found",
    );
    await expect(a.auth()).resolves.toMatchObject({ session: { session_id: a.id } });
  });
});

describe("the after-commit publisher", () => {
  it("is told whether older events of the session still wait in the outbox: they are to be published first", async () => {
    const backlogs: boolean[] = [];
    const chat = new ChatService({
      pool: f.servicePool,
      cache: null,
      responder: builtinResponder,
      publisher: {
        usesBacklog: true,
        afterCommit: async (_id, _events, backlog) => void backlogs.push(backlog),
      },
      config: f.config,
    });
    const created = await chat.createSession({});
    const id = created.session.session_id;
    const auth = () => chat.authorize(id, created.token);
    backlogs.length = 0;
    await chat.postMessage(await auth(), "one"); // the create's events were never published
    await f.db.pool.query("UPDATE outbox SET published_at = now() WHERE session_id = $1", [id]);
    await chat.postMessage(await auth(), "two"); // none waits: only its own events, just written
    expect(backlogs).toEqual([true, false]);
  });
});

describe("postMessage", () => {
  it("stores the user message and the reply with consecutive seqs and returns suggestions", async () => {
    const s = await newSession();
    const turn = await f.chat.postMessage(await s.auth(), "hello there");
    expect(turn.message).toMatchObject({ seq: 2, role: "user", content: "hello there", reply_to: null });
    expect(turn.reply).toMatchObject({ seq: 3, role: "assistant", reply_to: turn.message.message_id });
    expect(turn.suggestions).toHaveLength(3);
    const page = await f.chat.history(await s.auth(), 0, 50);
    expect(page.messages.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect((await s.auth()).session).toMatchObject({ last_seq: 3, message_count: 3 });
  });

  it("keeps seq gapless and unique under 60 concurrent posts to one session; every acknowledged message is stored", async () => {
    const s = await newSession();
    const results = await Promise.allSettled(
      Array.from({ length: 60 }, async (_, i) => f.chat.postMessage(await s.auth(), `message ${i}`)),
    );
    const ok = results
      .filter((r) => r.status === "fulfilled")
      .map((r) => (r as PromiseFulfilledResult<{ message: { message_id: string } }>).value);
    const failed = results
      .filter((r) => r.status === "rejected")
      .map((r) => ((r as PromiseRejectedResult).reason as ChatError).code);
    expect(failed.every((c) => c === "session_busy")).toBe(true);
    expect(ok.length).toBeGreaterThan(0);
    const rows = await f.db.pool.query(
      "SELECT seq, message_id, role FROM messages WHERE session_id = $1 ORDER BY seq",
      [s.id],
    );
    const seqs = rows.rows.map((r) => r.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect(rows.rowCount).toBe(1 + 2 * ok.length);
    const stored = new Set(rows.rows.map((r) => r.message_id));
    for (const t of ok) expect(stored.has(t.message.message_id)).toBe(true);
    const outbox = await f.db.pool.query("SELECT count(*)::int AS n FROM outbox WHERE session_id = $1", [
      s.id,
    ]);
    expect(outbox.rows[0].n).toBe(2 + 2 * ok.length);
  });

  it("rejects empty, blank, oversized and NUL content with validation_failed and changes nothing", async () => {
    const s = await newSession();
    const before = await rowCounts(f.db.pool);
    for (const bad of ["", "   \n", "x".repeat(8001), "a\u0000b", "\ud800"]) {
      expect(await codeOf(f.chat.postMessage(await s.auth(), bad))).toBe("validation_failed");
    }
    expect(await rowCounts(f.db.pool)).toEqual(before);
  });

  it("counts content in characters, so 8,000 emoji are accepted", async () => {
    const s = await newSession();
    const turn = await f.chat.postMessage(await s.auth(), "😀".repeat(8000));
    expect(turn.message.content).toBe("😀".repeat(8000));
  });
});

describe("editMessage", () => {
  it("bumps version and edited_at, and exactly one of two concurrent edits with the same expected_version wins", async () => {
    const s = await newSession();
    const turn = await f.chat.postMessage(await s.auth(), "first draft");
    const [a, b] = await Promise.allSettled([
      f.chat.editMessage(await s.auth(), {
        message_id: turn.message.message_id,
        content: "A",
        expected_version: 1,
      }),
      f.chat.editMessage(await s.auth(), {
        message_id: turn.message.message_id,
        content: "B",
        expected_version: 1,
      }),
    ]);
    const outcomes = [a, b]
      .map((r) => (r.status === "fulfilled" ? "ok" : (r.reason as ChatError).code))
      .sort();
    expect(outcomes).toEqual(["ok", "version_conflict"]);
    const row = await f.db.pool.query(
      "SELECT version, content, edited_at FROM messages WHERE message_id = $1",
      [turn.message.message_id],
    );
    expect(row.rows[0].version).toBe(2);
    expect(["A", "B"]).toContain(row.rows[0].content);
    expect(row.rows[0].edited_at).not.toBeNull();
  });

  it("refuses to edit assistant messages and unknown ids", async () => {
    const s = await newSession();
    const turn = await f.chat.postMessage(await s.auth(), "hi");
    expect(
      await codeOf(f.chat.editMessage(await s.auth(), { message_id: turn.reply.message_id, content: "x" })),
    ).toBe("message_not_editable");
    expect(
      await codeOf(
        f.chat.editMessage(await s.auth(), {
          message_id: "00000000-0000-4000-8000-000000000000",
          content: "x",
        }),
      ),
    ).toBe("message_not_found");
  });

  it("cannot edit another session's message through its own session", async () => {
    const a = await newSession();
    const b = await newSession();
    const turn = await f.chat.postMessage(await a.auth(), "mine");
    const before = await rowCounts(f.db.pool);
    expect(
      await codeOf(
        f.chat.editMessage(await b.auth(), { message_id: turn.message.message_id, content: "stolen" }),
      ),
    ).toBe("message_not_found");
    expect(await codeOf(f.chat.deleteMessage(await b.auth(), turn.message.message_id))).toBe(
      "message_not_found",
    );
    expect(await rowCounts(f.db.pool)).toEqual(before);
  });

  it("with regenerate, replaces the reply to the latest user message, and refuses it for an older one", async () => {
    const s = await newSession();
    const first = await f.chat.postMessage(await s.auth(), "hello");
    const second = await f.chat.postMessage(await s.auth(), "what can you do?");
    const edited = await f.chat.editMessage(await s.auth(), {
      message_id: second.message.message_id,
      content: "how many messages so far?",
      regenerate: true,
    });
    expect(edited.reply).toMatchObject({
      message_id: second.reply.message_id,
      seq: second.reply.seq,
      version: 2,
    });
    // The responder sees the history before the edited message (welcome, "hello", its reply) plus the new text:
    // two user turns and two of the bot's. The old text of the edited message and its old reply are not counted.
    const expected = "So far I can see 2 messages from you and 2 from me.";
    expect(edited.reply?.content).toBe(expected);
    const stored = await f.db.pool.query("SELECT content FROM messages WHERE message_id = $1", [
      second.reply.message_id,
    ]);
    expect(stored.rows[0].content).toBe(expected);
    expect(
      await codeOf(
        f.chat.editMessage(await s.auth(), {
          message_id: first.message.message_id,
          content: "x",
          regenerate: true,
        }),
      ),
    ).toBe("validation_failed");
  });
});

describe("deleteMessage", () => {
  it("tombstones the message: it leaves history at once, its text is wiped, and a second delete is message_not_found", async () => {
    const s = await newSession();
    const turn = await f.chat.postMessage(await s.auth(), "secret text");
    await f.chat.history(await s.auth(), 0, 50); // warm the cache
    await f.chat.deleteMessage(await s.auth(), turn.message.message_id);
    const page = await f.chat.history(await s.auth(), 0, 50);
    expect(page.messages.map((m) => m.message_id)).not.toContain(turn.message.message_id);
    const row = await f.db.pool.query("SELECT content, deleted_at FROM messages WHERE message_id = $1", [
      turn.message.message_id,
    ]);
    expect(row.rows[0]).toMatchObject({ content: "" });
    expect(row.rows[0].deleted_at).not.toBeNull();
    expect(await codeOf(f.chat.deleteMessage(await s.auth(), turn.message.message_id))).toBe(
      "message_not_found",
    );
    expect((await s.auth()).session.message_count).toBe(2);
  });
});

describe("deleteMessage: versions and the outbox", () => {
  /** The outbox rows of one message, oldest first: type, version, content, and whether still queued. */
  const eventsOf = async (messageId: string) =>
    (
      await f.db.pool.query(
        `SELECT event_type AS type, (event->'data'->>'version')::int AS version, event->'data'->>'content' AS content,
                EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id) AS queued
           FROM outbox o WHERE event->'data'->>'message_id' = $1 ORDER BY id`,
        [messageId],
      )
    ).rows;

  it("a delete is a new version: the row and its deleted event are one past the last edit", async () => {
    const s = await newSession();
    const turn = await f.chat.postMessage(await s.auth(), "version one");
    const id = turn.message.message_id;
    await f.chat.editMessage(await s.auth(), { message_id: id, content: "version two" });
    await f.chat.deleteMessage(await s.auth(), id);
    const row = await f.db.pool.query("SELECT version FROM messages WHERE message_id = $1", [id]);
    expect(row.rows[0].version).toBe(3);
    expect((await eventsOf(id)).map((e) => [e.type, e.version])).toEqual([
      ["chat.message.created", 1],
      ["chat.message.edited", 2],
      ["chat.message.deleted", 3],
    ]);
  });

  it("with an expected version, deletes only a message at it: version_conflict otherwise, nothing changed", async () => {
    const s = await newSession();
    const turn = await f.chat.postMessage(await s.auth(), "keep me unless unchanged");
    const id = turn.message.message_id;
    const before = await rowCounts(f.db.pool);
    expect(await codeOf(f.chat.deleteMessage(await s.auth(), id, 99))).toBe("version_conflict");
    expect(await codeOf(f.chat.deleteMessage(await s.auth(), id, []))).toBe("version_conflict");
    expect(await rowCounts(f.db.pool)).toEqual(before);
    const row = await f.db.pool.query(
      "SELECT content, version, deleted_at FROM messages WHERE message_id = $1",
      [id],
    );
    expect(row.rows[0]).toMatchObject({ content: "keep me unless unchanged", version: 1, deleted_at: null });
    // a missing message stays message_not_found, whatever the versions
    const missing = "00000000-0000-4000-8000-000000000000";
    expect(await codeOf(f.chat.deleteMessage(await s.auth(), missing, 1))).toBe("message_not_found");
    await f.chat.deleteMessage(await s.auth(), id, [7, 1]);
    expect((await eventsOf(id)).map((e) => e.type)).toEqual(["chat.message.created", "chat.message.deleted"]);
  });

  it("a regenerate after its reply was deleted announces the edit as edited and the new reply as created", async () => {
    const s = await newSession();
    const turn = await f.chat.postMessage(await s.auth(), "ask once");
    await f.chat.deleteMessage(await s.auth(), turn.reply.message_id);
    const edited = await f.chat.editMessage(await s.auth(), {
      message_id: turn.message.message_id,
      content: "ask again",
      regenerate: true,
    });
    const reply = edited.reply;
    if (!reply) throw new Error("expected a reply");
    expect(reply.message_id).not.toBe(turn.reply.message_id);
    const summary = (events: Awaited<ReturnType<typeof eventsOf>>) =>
      events.map((e) => [e.type, e.version, e.content]);
    expect(summary(await eventsOf(turn.message.message_id))).toEqual([
      ["chat.message.created", 1, "ask once"],
      ["chat.message.edited", 2, "ask again"],
    ]);
    expect(summary(await eventsOf(reply.message_id))).toEqual([["chat.message.created", 1, reply.content]]);
  });

  it("redacts the message's text in its events, queued or already published: they stay, with content empty", async () => {
    const s = await newSession();
    const published = await f.chat.postMessage(await s.auth(), "published secret 7f3a");
    // published: off the queue (as a mark takes it), kept in the outbox until its retention
    await f.db.pool.query(
      "DELETE FROM outbox_pending WHERE id IN (SELECT id FROM outbox WHERE session_id = $1)",
      [s.id],
    );
    // queued: the publisher here is the outbox alone, as while Kafka is away
    const queued = await f.chat.postMessage(await s.auth(), "queued secret 7f3a");
    await f.chat.editMessage(await s.auth(), {
      message_id: queued.message.message_id,
      content: "edited secret 7f3a",
    });
    const kept = await f.chat.postMessage(await s.auth(), "kept text 7f3a");
    await f.chat.deleteMessage(await s.auth(), published.message.message_id);
    await f.chat.deleteMessage(await s.auth(), queued.message.message_id);

    expect(await eventsOf(published.message.message_id)).toEqual([
      { type: "chat.message.created", version: 1, content: "", queued: false },
      { type: "chat.message.deleted", version: 2, content: null, queued: true },
    ]);
    expect(await eventsOf(queued.message.message_id)).toEqual([
      { type: "chat.message.created", version: 1, content: "", queued: true },
      { type: "chat.message.edited", version: 2, content: "", queued: true },
      { type: "chat.message.deleted", version: 3, content: null, queued: true },
    ]);
    const deleted = [published.message.message_id, queued.message.message_id];
    const leaks = await f.db.pool.query(
      "SELECT count(*)::int AS n FROM outbox WHERE event->'data'->>'message_id' = ANY($1) AND event::text LIKE '%secret%'",
      [deleted],
    );
    expect(leaks.rows[0].n).toBe(0);
    // only the deleted messages' events: another message's keeps its text
    expect((await eventsOf(kept.message.message_id))[0]).toMatchObject({ content: "kept text 7f3a" });
  });
});

describe("history", () => {
  it("pages by seq cursor without offsets and skips deleted messages", async () => {
    const s = await newSession();
    for (let i = 0; i < 5; i++) await f.chat.postMessage(await s.auth(), `m${i}`);
    const p1 = await f.chat.history(await s.auth(), 0, 4);
    expect(p1.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    expect(p1.next_after_seq).toBe(4);
    const p2 = await f.chat.history(await s.auth(), 4, 4);
    expect(p2.messages.map((m) => m.seq)).toEqual([5, 6, 7, 8]);
    const p3 = await f.chat.history(await s.auth(), 8, 4);
    expect(p3.messages.map((m) => m.seq)).toEqual([9, 10, 11]);
    expect(p3.next_after_seq).toBeNull();
  });
});

describe("erasure", () => {
  it("removes the session, its messages and outbox content, leaving one erased event", async () => {
    const s = await newSession();
    await f.chat.postMessage(await s.auth(), "forget me");
    const auth = await s.auth();
    await f.chat.eraseSession(auth);
    expect(await codeOf(s.auth())).toBe("unauthorized");
    const left = await f.db.pool.query(
      "SELECT (SELECT count(*) FROM messages WHERE session_id = $1)::int AS m, (SELECT array_agg(event_type) FROM outbox WHERE session_id = $1) AS o",
      [s.id],
    );
    expect(left.rows[0]).toEqual({ m: 0, o: ["chat.session.erased"] });
  });

  it("a request whose token was accepted before the session was erased gets unauthorized, as the erased token does", async () => {
    // no cache: every request below goes to Postgres after its authorization, where the session is gone
    const uncached = new ChatService({
      pool: f.db.pool,
      cache: null,
      responder: builtinResponder,
      config: f.config,
      publisher: { usesBacklog: false, afterCommit: async () => {} },
    });
    const s = await newSession();
    const posted = await uncached.postMessage(await uncached.authorize(s.id, s.created.token), "soon gone");
    const messageId = posted.message.message_id;
    const accepted = await Promise.all(
      Array.from({ length: 3 }, () => uncached.authorize(s.id, s.created.token)),
    );
    await uncached.eraseSession(await uncached.authorize(s.id, s.created.token));
    const [post, edit, del] = accepted as [AuthorizedSession, AuthorizedSession, AuthorizedSession];
    expect(await codeOf(uncached.postMessage(post, "after the erase"))).toBe("unauthorized");
    expect(await codeOf(uncached.editMessage(edit, { message_id: messageId, content: "x" }))).toBe(
      "unauthorized",
    );
    expect(await codeOf(uncached.deleteMessage(del, messageId))).toBe("unauthorized");
    // a read whose authorization did not hold the whole history (over the cache's byte bound) reads it afterwards
    const longReads = new ChatService({
      pool: f.db.pool,
      cache: null,
      responder: builtinResponder,
      config: { ...f.config, CACHE_HISTORY_MAX_BYTES: 16 },
      publisher: { usesBacklog: false, afterCommit: async () => {} },
    });
    const t = await newSession();
    const read = await longReads.authorize(t.id, t.created.token);
    expect(read.history).toBeFalsy();
    await longReads.eraseSession(await longReads.authorize(t.id, t.created.token));
    expect(await codeOf(longReads.history(read, 0, 10))).toBe("unauthorized");
    const left = await f.db.pool.query("SELECT count(*)::int AS n FROM messages WHERE session_id = $1", [
      s.id,
    ]);
    expect(left.rows[0].n).toBe(0);
  });

  it("a second erase of the same session (a retry, or the purge meeting a user's erase) keeps the first one's event", async () => {
    const s = await newSession();
    await f.chat.postMessage(await s.auth(), "forget me twice");
    const auth = await s.auth();
    const published: string[] = [];
    const recording = new ChatService({
      pool: f.db.pool,
      cache: f.cache,
      responder: builtinResponder,
      config: f.config,
      publisher: {
        usesBacklog: false,
        afterCommit: async (_id, events) => {
          published.push(...events.map((e) => e.id));
        },
      },
    });
    // both requests authorized before either erased, as two concurrent DELETEs would be
    await recording.eraseSession(auth);
    await recording.eraseSession(auth);
    const events = await f.db.pool.query("SELECT event_id FROM outbox WHERE session_id = $1", [s.id]);
    expect(events.rows.map((r) => r.event_id)).toEqual(published);
    expect(published).toHaveLength(1);
  });
});
