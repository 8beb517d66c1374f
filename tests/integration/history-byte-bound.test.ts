import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HISTORY_CACHE_MAX, type PostedTurn } from "../../layers/chat/chat/chat-service.ts";
import { loadSnapshot } from "../../layers/chat/db/chat-store.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * CACHE_HISTORY_MAX_BYTES bounds a session's cached history entry: a post never extends it past the bound, a fill
 * never stores one over it, and Postgres never sends the whole of a history whose content is over it. Such a
 * session is served from Postgres, with the same answers as a cached one.
 */
const MAX_BYTES = 8192;
let f: ChatFixture;
beforeAll(async () => {
  f = await chatFixture({ env: { CACHE_HISTORY_MAX_BYTES: String(MAX_BYTES) } });
});
afterAll(() => f.close());

const historyKey = (id: string) => `chat:{${id}}:h`;
const sessionKey = (id: string) => `chat:{${id}}:s`;
const window = () => f.config.RESPONDER_CONTEXT_MESSAGES * 2 + 2;
/** A text's bytes as the cache entry's JSON holds it, quotes left out: what the bound counts. */
const escapedBytes = (text: string) => Buffer.byteLength(JSON.stringify(text)) - 2;

async function newSession() {
  const created = await f.chat.createSession({});
  const id = created.session.session_id;
  return { id, auth: () => f.chat.authorize(id, created.token) };
}

/** The whole non-deleted history, straight from Postgres, with no byte bound. */
async function truth(id: string) {
  const snap = await loadSnapshot(f.db.pool, id, HISTORY_CACHE_MAX);
  if (!snap?.complete) throw new Error("the test's sessions stay under HISTORY_CACHE_MAX");
  return snap.messages;
}

describe(`a cached history is at most CACHE_HISTORY_MAX_BYTES (${MAX_BYTES})`, () => {
  it("posts extend the entry up to the bound, then drop it; pages stay Postgres' history", async () => {
    const s = await newSession();
    const lengths: number[] = [];
    for (let i = 0; i < 12; i++) {
      await f.chat.postMessage(await s.auth(), `${i} ${"x".repeat(900)}`);
      lengths.push(await f.redis!.strlen(historyKey(s.id)));
    }
    expect(Math.max(...lengths)).toBeLessThanOrEqual(MAX_BYTES);
    // it was cached while small (the append path ran), and is gone once the next post would pass the bound
    expect(lengths[0]).toBeGreaterThan(0);
    expect(lengths.at(-1)).toBe(0);

    const auth = await s.auth();
    expect(auth.fromCache).toBe(true); // the session entry is still cached; only the history is not
    const page = await f.chat.historyJson(auth, 0, 50);
    expect(page.fromCache).toBe(false);
    expect(JSON.parse(page.json)).toEqual({ messages: await truth(s.id), next_after_seq: null });
    expect(await f.redis!.strlen(historyKey(s.id))).toBe(0);
    expect(await f.redis!.exists(sessionKey(s.id))).toBe(1);
  });

  it("a fill does not store a history whose escaped text is over the bound, though its content is under", async () => {
    const s = await newSession();
    // 700 control characters: 700 bytes in Postgres, 4,200 in the JSON of the cache entry
    await f.chat.postMessage(await s.auth(), `a${"\u0001".repeat(700)}`);
    await f.chat.postMessage(await s.auth(), `b${"\u0001".repeat(700)}`);
    await f.redis!.del(historyKey(s.id), sessionKey(s.id));

    const auth = await s.auth(); // a miss: reads Postgres and fills the cache
    expect(auth.fromCache).toBe(false);
    expect(await f.redis!.exists(sessionKey(s.id))).toBe(1);
    expect(await f.redis!.exists(historyKey(s.id))).toBe(0);
    const page = await f.chat.historyJson(await s.auth(), 0, 50);
    expect(JSON.parse(page.json).messages).toEqual(await truth(s.id));
  });

  it("Postgres sends only the newest messages of a history whose content is under the bound but not its JSON", async () => {
    // Every request of such a session read it whole, since no fill could store it: at 1 MiB of control
    // characters, 6 MB of JSON and ≈ 100 ms a request (a page, a post), against ≈ 15 ms for a larger history.
    const s = await newSession();
    for (let i = 0; i < 25; i++) await f.chat.postMessage(await s.auth(), `${i}${"\u0001".repeat(60)}`);
    const all = await truth(s.id);
    const bytes = (text: string) => Buffer.byteLength(text);
    expect(all.length).toBeGreaterThan(window());
    expect(all.reduce((n, m) => n + bytes(m.content), 0)).toBeLessThan(MAX_BYTES);
    expect(all.reduce((n, m) => n + escapedBytes(m.content), 0)).toBeGreaterThan(MAX_BYTES);

    const snap = await loadSnapshot(f.db.pool, s.id, HISTORY_CACHE_MAX, window(), MAX_BYTES);
    expect(snap).toMatchObject({ complete: false, messages: all.slice(-window()) });
    // content between MAX_BYTES / 6 and MAX_BYTES whose JSON fits is still sent whole
    const plain = await newSession();
    for (let i = 0; i < 5; i++) await f.chat.postMessage(await plain.auth(), `${i} ${"q".repeat(400)}`);
    const plainAll = await truth(plain.id);
    expect(plainAll.reduce((n, m) => n + bytes(m.content), 0)).toBeGreaterThan(MAX_BYTES / 6);
    const whole = await loadSnapshot(f.db.pool, plain.id, HISTORY_CACHE_MAX, window(), MAX_BYTES);
    expect(whole).toMatchObject({ complete: true, messages: plainAll });

    const page = await f.chat.historyJson(await s.auth(), 0, 200);
    expect(JSON.parse(page.json)).toEqual({ messages: all, next_after_seq: null });
  });

  it("Postgres sends only the newest messages of a history whose content is over the bound", async () => {
    const s = await newSession();
    for (let i = 0; i < 25; i++) await f.chat.postMessage(await s.auth(), `${i} ${"y".repeat(400)}`);
    const all = await truth(s.id);
    expect(all.length).toBeGreaterThan(window());

    const bounded = await loadSnapshot(f.db.pool, s.id, HISTORY_CACHE_MAX, window(), MAX_BYTES);
    expect(bounded?.complete).toBe(false);
    expect(bounded?.messages).toEqual(all.slice(-window()));
    const roomy = await loadSnapshot(f.db.pool, s.id, HISTORY_CACHE_MAX, window(), 1 << 20);
    expect(roomy?.complete).toBe(true);
    expect(roomy?.messages).toEqual(all);
  });

  it("a history of exactly `limit` messages and exactly the byte bound is sent whole, marked complete", async () => {
    const s = await newSession();
    for (let i = 0; i < 3; i++) await f.chat.postMessage(await s.auth(), `${i} ${"z".repeat(100)}`);
    const all = await truth(s.id);
    const bytes = all.reduce((n, m) => n + escapedBytes(m.content), 0);
    const exact = await loadSnapshot(f.db.pool, s.id, all.length, 2, bytes);
    expect(exact).toMatchObject({ complete: true, messages: all });
    // one message or one byte less is over a bound: only the newest two, not complete
    for (const [limit, maxBytes] of [
      [all.length - 1, bytes],
      [all.length, bytes - 1],
    ] as const) {
      const over = await loadSnapshot(f.db.pool, s.id, limit, 2, maxBytes);
      expect(over).toMatchObject({ complete: false, messages: all.slice(-2) });
    }
  });

  it("counts the bytes of every live message, however many deleted ones are newer", async () => {
    const s = await newSession();
    const turns: PostedTurn[] = [];
    for (let i = 0; i < 3; i++)
      turns.push(await f.chat.postMessage(await s.auth(), `${i} ${"w".repeat(100)}`));
    // the two newest turns' four messages go: the newest rows are tombstones, the live ones older
    for (const t of turns.slice(1))
      for (const m of [t.message, t.reply]) await f.chat.deleteMessage(await s.auth(), m.message_id);
    const live = await truth(s.id);
    const bytes = live.reduce((n, m) => n + escapedBytes(m.content), 0);
    const under = await loadSnapshot(f.db.pool, s.id, live.length, 2, bytes - 1);
    expect(under).toMatchObject({ complete: false, messages: live.slice(-2) });
    const whole = await loadSnapshot(f.db.pool, s.id, live.length, 2, bytes);
    expect(whole).toMatchObject({ complete: true, messages: live });
  });

  it("a snapshot's messages (read as JSON) are the messages the API returned, timestamps in the same form", async () => {
    const s = await newSession();
    const turn = await f.chat.postMessage(await s.auth(), "hello");
    const edited = await f.chat.editMessage(await s.auth(), {
      message_id: turn.message.message_id,
      content: "hi",
    });
    expect((await truth(s.id)).slice(-2)).toEqual([edited.message, turn.reply]);
  });

  it("posts, edits and deletes of such a session behave as on a cached one", async () => {
    const s = await newSession();
    const turns: PostedTurn[] = [];
    for (let i = 0; i < 12; i++)
      turns.push(await f.chat.postMessage(await s.auth(), `${i} ${"z".repeat(900)}`));
    const oldest = turns[0]!;
    const edited = await f.chat.editMessage(await s.auth(), {
      message_id: oldest.message.message_id,
      content: "the first, shorter",
    });
    expect(edited.message.version).toBe(2);
    const latest = turns.at(-1)!;
    const regenerated = await f.chat.editMessage(await s.auth(), {
      message_id: latest.message.message_id,
      content: "the last, regenerated",
      regenerate: true,
    });
    expect(regenerated.reply?.message_id).toBe(latest.reply.message_id);
    await f.chat.deleteMessage(await s.auth(), turns[1]!.message.message_id);

    const messages = await truth(s.id);
    expect(messages.find((m) => m.message_id === oldest.message.message_id)?.content).toBe(
      "the first, shorter",
    );
    expect(messages.some((m) => m.message_id === turns[1]!.message.message_id)).toBe(false);
    const page = await f.chat.historyJson(await s.auth(), 0, 100);
    expect(JSON.parse(page.json)).toEqual({ messages, next_after_seq: null });
    expect(await f.redis!.strlen(historyKey(s.id))).toBeLessThanOrEqual(MAX_BYTES);
  });
});
