import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionCache } from "../../layers/chat/cache/session-cache.ts";
import { HISTORY_CACHE_MAX } from "../../layers/chat/chat/chat-service.ts";
import { isLineForm } from "../../layers/chat/chat/history-text.ts";
import { loadSnapshot } from "../../layers/chat/db/chat-store.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * A post appends its two messages to the cached history in Redis instead of rewriting it: the entry must
 * stay exactly what Postgres holds, and an entry of any other generation must never be extended.
 */
let f: ChatFixture;
let cache: SessionCache;
beforeAll(async () => {
  f = await chatFixture();
  cache = new SessionCache(f.redis!, {
    sessionTtlSeconds: 300,
    historyTtlSeconds: 300,
    historyMaxBytes: 1 << 20,
  });
});
afterAll(() => f.close());

const historyKey = (id: string) => `chat:{${id}}:h`;

async function newSession() {
  const created = await f.chat.createSession({});
  const id = created.session.session_id;
  return { id, auth: () => f.chat.authorize(id, created.token) };
}

describe("history cache, appended by posts", () => {
  it("after posts, edits and deletes the cached history is Postgres' history, in line form", async () => {
    const s = await newSession();
    const first = await f.chat.postMessage(await s.auth(), 'one "quoted",\nline');
    await f.chat.postMessage(await s.auth(), "two");
    await f.chat.deleteMessage(await s.auth(), first.message.message_id);
    await f.chat.postMessage(await s.auth(), "three");
    const third = await f.chat.postMessage(await s.auth(), "four");
    await f.chat.editMessage(await s.auth(), {
      message_id: third.message.message_id,
      content: "four, edited",
    });
    await f.chat.postMessage(await s.auth(), "five");

    const auth = await s.auth();
    expect(auth.fromCache).toBe(true);
    expect(auth.historyText && isLineForm(auth.historyText)).toBe(true);
    const truth = await loadSnapshot(f.db.pool, s.id, HISTORY_CACHE_MAX);
    expect(auth.session.generation).toBe(truth?.session.generation);
    expect(auth.history).toEqual(truth?.messages);
    const page = await f.chat.historyJson(auth, 0, 50);
    expect(JSON.parse(page.json)).toEqual({ messages: truth?.messages, next_after_seq: null });
  });

  it("extends only a history of the generation the change started from; any other is dropped", async () => {
    const s = await newSession();
    await f.chat.postMessage(await s.auth(), "hello");
    const snap = (await loadSnapshot(f.db.pool, s.id, HISTORY_CACHE_MAX))!;
    const [extra] = snap.messages;
    const next = { ...snap.session, generation: snap.session.generation + 1 };
    // the history entry is at generation g; an append claiming to start from g - 1 must not extend it
    expect(await cache.append(next, snap.session.generation - 1, [extra!], HISTORY_CACHE_MAX)).toBe(true);
    expect(await f.redis!.exists(historyKey(s.id))).toBe(0);
    const lookup = await cache.get(s.id);
    expect(lookup.kind === "hit" && lookup.value.history).toBeNull();
  });

  it("never moves the session entry backwards, and drops the history past the size bound", async () => {
    const s = await newSession();
    await f.chat.postMessage(await s.auth(), "hello");
    const snap = (await loadSnapshot(f.db.pool, s.id, HISTORY_CACHE_MAX))!;
    const older = { ...snap.session, generation: snap.session.generation - 1 };
    expect(await cache.append(older, older.generation - 1, [], HISTORY_CACHE_MAX)).toBe(false);
    const kept = await cache.get(s.id);
    expect(kept.kind === "hit" && kept.value.session.generation).toBe(snap.session.generation);

    const big = { ...snap.session, generation: snap.session.generation + 1, message_count: 3 };
    await cache.append(big, snap.session.generation, snap.messages.slice(0, 1), 2);
    const dropped = await cache.get(s.id);
    expect(dropped.kind === "hit" && dropped.value.history).toBeNull();
  });
});

describe("history cache, extended in place", () => {
  async function snapshot() {
    const s = await newSession();
    await f.chat.postMessage(await s.auth(), "one");
    await f.chat.postMessage(await s.auth(), "two");
    return { id: s.id, snap: (await loadSnapshot(f.db.pool, s.id, HISTORY_CACHE_MAX))! };
  }
  const history = async (id: string) => {
    const lookup = await cache.get(id);
    return lookup.kind === "hit" ? lookup.value.history : undefined;
  };

  it("appends to an empty history, then to a non-empty one, restamping the entry each time", async () => {
    const { id, snap } = await snapshot();
    const [a, b, c] = snap.messages;
    const g = snap.session.generation + 10;
    expect(await cache.put({ ...snap.session, generation: g }, [])).toBe(true);
    expect(await history(id)).toEqual([]);

    await cache.append({ ...snap.session, generation: g + 1 }, g, [a!, b!], HISTORY_CACHE_MAX);
    expect(await history(id)).toEqual([a, b]);
    await cache.append({ ...snap.session, generation: g + 2 }, g + 1, [c!], HISTORY_CACHE_MAX);
    expect(await history(id)).toEqual([a, b, c]);
    expect(await f.redis!.get(historyKey(id))).toMatch(
      new RegExp(`^${String(g + 2).padStart(16, "0")}\\|\\[\\n`),
    );
  });

  it("an append of no messages only restamps the history", async () => {
    const { id, snap } = await snapshot();
    const g = snap.session.generation + 10;
    await cache.put({ ...snap.session, generation: g }, snap.messages);
    await cache.append({ ...snap.session, generation: g + 1 }, g, [], HISTORY_CACHE_MAX);
    const lookup = await cache.get(id);
    expect(lookup.kind === "hit" && lookup.value.session.generation).toBe(g + 1);
    expect(lookup.kind === "hit" && lookup.value.history).toEqual(snap.messages);
  });

  it.each([
    ["stamped without padding (an older release's entry)", (g: number, text: string) => `${g}|${text}`],
    [
      "without its closing bracket",
      (g: number, text: string) => `${String(g).padStart(16, "0")}|${text.slice(0, -2)}`,
    ],
    ["shorter than an empty history", (g: number) => `${String(g).padStart(16, "0")}|[\n]`],
  ])("an entry %s is dropped, never extended", async (_, entry) => {
    const { id, snap } = await snapshot();
    const g = snap.session.generation + 10;
    await cache.put({ ...snap.session, generation: g }, snap.messages);
    const text = (await f.redis!.get(historyKey(id)))!.slice(17);
    await f.redis!.set(historyKey(id), entry(g, text));
    await cache.append(
      { ...snap.session, generation: g + 1 },
      g,
      snap.messages.slice(0, 1),
      HISTORY_CACHE_MAX,
    );
    expect(await f.redis!.exists(historyKey(id))).toBe(0);
    expect(await history(id)).toBeNull();
  });
});
