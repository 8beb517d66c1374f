import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generationStamp, SessionCache } from "../../layers/chat/cache/session-cache.ts";
import { HISTORY_CACHE_MAX } from "../../layers/chat/chat/chat-service.ts";
import { historyText } from "../../layers/chat/chat/history-text.ts";
import type { Message } from "../../layers/chat/chat/types.ts";
import { loadSnapshot } from "../../layers/chat/db/chat-store.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * What SessionCache leaves in Redis: each entry's TTL (session and history TTLs differ here, so a swap shows), and
 * the history size bound at its exact edge, for a fill and for an append.
 */
const SESSION_TTL = 300;
const HISTORY_TTL = 120;

let f: ChatFixture;
beforeAll(async () => {
  f = await chatFixture();
});
afterAll(() => f.close());

const cacheOf = (historyMaxBytes = 1 << 20) =>
  new SessionCache(f.redis!, {
    sessionTtlSeconds: SESSION_TTL,
    historyTtlSeconds: HISTORY_TTL,
    historyMaxBytes,
  });
const sessionKey = (id: string) => `chat:{${id}}:s`;
const historyKey = (id: string) => `chat:{${id}}:h`;

/** A session with a few messages (multi-byte content: the bound counts bytes), as Postgres holds it. */
async function snapshot() {
  const created = await f.chat.createSession({});
  const id = created.session.session_id;
  await f.chat.postMessage(await f.chat.authorize(id, created.token), "é one");
  await f.chat.postMessage(await f.chat.authorize(id, created.token), "€ two");
  return { id, snap: (await loadSnapshot(f.db.pool, id, HISTORY_CACHE_MAX))! };
}
/** Bytes of the history entry for `messages` at `generation`, stamp included. */
const entryBytes = (generation: number, messages: Message[]) =>
  Buffer.byteLength(`${generationStamp(generation)}|${historyText(messages)}`);

describe("entry lifetimes", () => {
  it("a fill gives the session entry the session TTL and the history entry the history TTL", async () => {
    const { id, snap } = await snapshot();
    await cacheOf().put({ ...snap.session, generation: snap.session.generation + 1 }, snap.messages);
    const sessionTtl = await f.redis!.ttl(sessionKey(id));
    const historyTtl = await f.redis!.ttl(historyKey(id));
    expect(sessionTtl).toBeGreaterThan(HISTORY_TTL);
    expect(sessionTtl).toBeLessThanOrEqual(SESSION_TTL);
    expect(historyTtl).toBeGreaterThan(HISTORY_TTL - 10);
    expect(historyTtl).toBeLessThanOrEqual(HISTORY_TTL);
  });

  it("an append renews the history entry's TTL: an active session keeps its history cached", async () => {
    const { id, snap } = await snapshot();
    const g = snap.session.generation + 1;
    const cache = cacheOf();
    await cache.put({ ...snap.session, generation: g }, snap.messages.slice(0, -1));
    await f.redis!.expire(historyKey(id), 5); // as if filled long ago
    await cache.append({ ...snap.session, generation: g + 1 }, g, snap.messages.slice(-1), HISTORY_CACHE_MAX);
    expect(await f.redis!.ttl(historyKey(id))).toBeGreaterThan(HISTORY_TTL - 10);
  });

  it("an invalidation's placeholder lives the session TTL: it must outlast any reader of the older state", async () => {
    const { id, snap } = await snapshot();
    await cacheOf().invalidate([{ sessionId: id, generation: snap.session.generation }]);
    expect(await f.redis!.exists(historyKey(id))).toBe(0);
    expect(await f.redis!.ttl(sessionKey(id))).toBeGreaterThan(HISTORY_TTL);
    // and it still refuses a fill from before it
    const older = { ...snap.session, generation: snap.session.generation - 1 };
    expect(await cacheOf().put(older, snap.messages.slice(0, -1))).toBe(false);
  });
});

describe("the history size bound (bytes, stamp included)", () => {
  it("a fill of exactly the bound is stored; one byte less of bound drops the history", async () => {
    const { id, snap } = await snapshot();
    const g = snap.session.generation + 1;
    const bytes = entryBytes(g, snap.messages);
    await cacheOf(bytes).put({ ...snap.session, generation: g }, snap.messages);
    expect(await f.redis!.strlen(historyKey(id))).toBe(bytes);
    await cacheOf(bytes - 1).put({ ...snap.session, generation: g + 1 }, snap.messages);
    expect(await f.redis!.exists(historyKey(id))).toBe(0);
  });

  it("an append that makes the entry exactly the bound extends it; one byte more drops it", async () => {
    const { id, snap } = await snapshot();
    const first = snap.messages.slice(0, -1);
    const last = snap.messages.slice(-1);
    const g = snap.session.generation + 1;
    const bytes = entryBytes(g + 1, snap.messages);
    const cache = cacheOf(bytes);
    await cache.put({ ...snap.session, generation: g }, first);
    await cache.append({ ...snap.session, generation: g + 1 }, g, last, HISTORY_CACHE_MAX);
    const lookup = await cache.get(id);
    expect(lookup.kind === "hit" && lookup.value.history).toEqual(snap.messages);
    expect(await f.redis!.strlen(historyKey(id))).toBe(bytes);

    const tight = cacheOf(bytes - 1);
    await tight.put({ ...snap.session, generation: g + 2 }, first);
    await tight.append({ ...snap.session, generation: g + 3 }, g + 2, last, HISTORY_CACHE_MAX);
    expect(await f.redis!.exists(historyKey(id))).toBe(0);
  });

  it("an append keeps the history up to maxMessages messages, and drops it past them", async () => {
    const { id, snap } = await snapshot();
    const n = snap.messages.length;
    const g = snap.session.generation + 1;
    const cache = cacheOf();
    await cache.put({ ...snap.session, generation: g }, snap.messages.slice(0, -1));
    // message_count is the session's count after the change: exactly the bound keeps the history
    await cache.append(
      { ...snap.session, generation: g + 1, message_count: n },
      g,
      snap.messages.slice(-1),
      n,
    );
    const kept = await cache.get(id);
    expect(kept.kind === "hit" && kept.value.history).toEqual(snap.messages);
    await cache.append({ ...snap.session, generation: g + 2, message_count: n + 1 }, g + 1, [], n);
    const dropped = await cache.get(id);
    expect(dropped.kind === "hit" && dropped.value.history).toBeNull();
  });
});
