import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  HISTORY_END_BYTES,
  type PrefetchedEntries,
  SessionCache,
  type SessionRead,
} from "../../layers/chat/cache/session-cache.ts";
import { HISTORY_CACHE_MAX } from "../../layers/chat/chat/chat-service.ts";
import { pageOf } from "../../layers/chat/chat/history-rules.ts";
import { loadSnapshot } from "../../layers/chat/db/chat-store.ts";
import { builtinResponder } from "../../layers/chat/responders/builtin-responder.ts";
import type { Responder, Turn } from "../../layers/chat/responders/responder.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * A post, and a page of history, read only one end of a long cached history in the rate limiter's round trip: the
 * session entry and the history's first or last HISTORY_END_BYTES bytes. The lines kept must be exactly the
 * oldest or newest messages, wherever the byte cut falls (inside a multi-byte character too); a post planned from
 * them must see what a post planned from Postgres sees, and a page cut from them must be the page of the whole.
 */
const seen: Turn[][] = [];
const recording: Responder = {
  name: "recording",
  respond(history) {
    seen.push(history.map((t) => ({ ...t })));
    return builtinResponder.respond(history);
  },
};
const env = { RESPONDER_CONTEXT_MESSAGES: "4", RESPONDER_CONTEXT_CHARS: "100000" };
let cached: ChatFixture;
let uncached: ChatFixture;
let cache: SessionCache;
beforeAll(async () => {
  [cached, uncached] = await Promise.all([
    chatFixture({ responder: recording, env }),
    chatFixture({ responder: recording, env, redisUrl: null }),
  ]);
  cache = new SessionCache(cached.redis!, {
    sessionTtlSeconds: 300,
    historyTtlSeconds: 300,
    historyMaxBytes: 1 << 20,
  });
});
afterAll(() => Promise.all([cached.close(), uncached.close()]));

/** What the rate limiter's round trip would have read ahead of a post ("tail") or a page. */
const readAhead = (sessionId: string, read: SessionRead): Promise<PrefetchedEntries> =>
  cache.fetch(sessionId, read);
const readTail = (sessionId: string) => readAhead(sessionId, "tail");

/** Content of `chars` characters mixing 1-, 2-, 3- and 4-byte UTF-8, so byte cuts land inside characters. */
const content = (i: number, chars: number, alphabet = "aé€😀") =>
  Array.from(`${i}: ${alphabet.repeat(chars)}`)
    .slice(0, chars)
    .join("");

async function longSession(fx: ChatFixture, posts: number, chars: number, alphabet?: string) {
  const created = await fx.chat.createSession({});
  const id = created.session.session_id;
  for (let i = 0; i < posts; i++)
    await fx.chat.postMessage(await fx.chat.authorize(id, created.token), content(i, chars, alphabet));
  return { id, token: created.token };
}

/** How many times `work` read a session snapshot (its history) from Postgres. */
async function snapshotReads(work: () => Promise<unknown>): Promise<number> {
  const queries = vi.spyOn(pg.Client.prototype, "query");
  try {
    await work();
    return queries.mock.calls.filter(([q]) => (q as { name?: string } | undefined)?.name === "load_snapshot")
      .length;
  } finally {
    queries.mockRestore();
  }
}

describe("reading the end of a cached history", () => {
  it.each([301, 302, 303, 517, 1999])(
    "keeps exactly the newest messages whole, wherever the cut falls (content of %i characters)",
    async (chars) => {
      const { id } = await longSession(cached, Math.ceil((HISTORY_END_BYTES * 1.5) / (chars * 2)), chars);
      const truth = (await loadSnapshot(cached.db.pool, id, HISTORY_CACHE_MAX))!;
      const found = cache.lookupPrefetched(await readTail(id));
      expect(found.kind).toBe("hit");
      if (found.kind !== "hit") return;
      expect(found.value.historyText).toBeNull();
      const newest = found.value.newest!;
      expect(newest.count).toBeGreaterThan(0);
      expect(JSON.parse(`[${newest.lines}]`)).toEqual(truth.messages.slice(-newest.count));
      // nearly all of the bytes read are whole lines (at most one line is cut)
      expect(Buffer.byteLength(newest.lines)).toBeGreaterThan(HISTORY_END_BYTES - 4 * (chars + 300));
    },
  );

  it("a read of the session alone leaves the history out", async () => {
    const { id } = await longSession(cached, 3, 50);
    const whole = await cache.get(id);
    const found = cache.lookupPrefetched(await readAhead(id, "session"));
    expect(found.kind === "hit" && found.value.session).toEqual(whole.kind === "hit" && whole.value.session);
    expect(found.kind === "hit" && [found.value.historyText, found.value.newest, found.value.oldest]).toEqual(
      [null, null, null],
    );
  });

  it("a history that fits is read whole, as a whole read gives it", async () => {
    const { id } = await longSession(cached, 3, 50);
    const whole = await cache.get(id);
    const found = cache.lookupPrefetched(await readTail(id));
    expect(found.kind === "hit" && found.value.newest).toBeNull();
    expect(found.kind === "hit" && found.value.historyText).toBe(
      whole.kind === "hit" && whole.value.historyText,
    );
  });

  it("a history of another generation than the session entry is not used", async () => {
    const { id } = await longSession(cached, 40, 1000);
    const snap = (await loadSnapshot(cached.db.pool, id, HISTORY_CACHE_MAX))!;
    const ahead = { ...snap.session, generation: snap.session.generation + 1 };
    await cache.append(ahead, snap.session.generation + 5, [], HISTORY_CACHE_MAX); // session entry only; history dropped
    await cached.redis!.set(
      `chat:{${id}}:h`,
      `${String(snap.session.generation).padStart(16, "0")}|[\n${"x".repeat(40_000)}\n]`,
    );
    const found = cache.lookupPrefetched(await readTail(id));
    expect(found.kind === "hit" && found.value.session.generation).toBe(ahead.generation);
    expect(found.kind === "hit" && [found.value.newest, found.value.historyText]).toEqual([null, null]);
    // nor by a whole read
    const whole = await cache.get(id);
    expect(whole.kind === "hit" && whole.value.historyText).toBeNull();
  });
});

describe("the start of a long history whose messages are full of brackets", () => {
  it("is never taken for the whole entry where the cut falls after a ']'", async () => {
    const { id } = await longSession(cached, 40, 1000, "]");
    // a read of the start that ends inside a message's content, just after a "]"
    const entry = (await cached.redis!.get(`chat:{${id}}:h`))!;
    const cut = entry.indexOf("]]", entry.length / 2) + 1;
    const found = cache.lookupPrefetched(await cache.fetch(id, "head", cut));
    // only the entry's closing "\n]" says it was read whole
    expect(found.kind === "hit" && found.value.historyText).toBeNull();
    expect(found.kind === "hit" && found.value.oldest?.count).toBeGreaterThan(0);
  });
});

describe("a post on a long history", () => {
  /**
   * The same long conversation in both fixtures, then one more post: the cached one from a tail read. Also counts
   * the snapshots the cached post read from Postgres (0 when it planned from the tail).
   */
  async function finalContexts(chars: number, alphabet?: string, fx = { cached, uncached }) {
    const [a, b] = await Promise.all([
      longSession(fx.cached, 30, chars, alphabet),
      longSession(fx.uncached, 30, chars, alphabet),
    ]);
    // the first cache read of a second applies other instances' invalidations and ignores what was read ahead
    await fx.cached.chat.authorize(a.id, a.token);
    const auth = await fx.cached.chat.authorize(a.id, a.token, await readTail(a.id));
    seen.length = 0;
    const snapshots = await snapshotReads(() => fx.cached.chat.postMessage(auth, "last"));
    await fx.uncached.chat.postMessage(await fx.uncached.chat.authorize(b.id, b.token), "last");
    return { auth, contexts: seen.splice(0), id: a.id, snapshots };
  }

  it("plans from the tail: the responder sees what it sees from Postgres, and the cache is appended", async () => {
    const { auth, contexts, id, snapshots } = await finalContexts(1500);
    expect(snapshots).toBe(0);
    expect(auth.historyText).toBeNull();
    expect(auth.newest?.count).toBeGreaterThanOrEqual(4);
    const [fromTail, fromPostgres] = contexts;
    expect(fromTail).toHaveLength(4);
    expect(fromTail).toEqual(fromPostgres);
    const truth = (await loadSnapshot(cached.db.pool, id, HISTORY_CACHE_MAX))!;
    const after = await cache.get(id);
    expect(after.kind === "hit" && after.value.history).toEqual(truth.messages);
  });

  it("falls back to Postgres when the tail holds fewer messages than the responder takes", async () => {
    // 8,000 four-byte characters: one user message is longer than the tail, which then holds one whole line
    const { auth, contexts, snapshots } = await finalContexts(8000, "😀");
    expect(snapshots).toBe(1);
    expect(auth.newest?.count).toBe(1);
    const [fromCache, fromPostgres] = contexts;
    expect(fromCache).toHaveLength(4);
    expect(fromCache).toEqual(fromPostgres);
  });
});

describe("a post on a long history of long messages", () => {
  // the responder takes 4 messages but at most 3,000 characters: two 5,000-character messages already exceed that
  const env = { RESPONDER_CONTEXT_MESSAGES: "4", RESPONDER_CONTEXT_CHARS: "3000" };
  let fx: { cached: ChatFixture; uncached: ChatFixture };
  beforeAll(async () => {
    const [c, u] = await Promise.all([
      chatFixture({ responder: recording, env }),
      chatFixture({ responder: recording, env, redisUrl: null }),
    ]);
    fx = { cached: c, uncached: u };
  });
  afterAll(() => Promise.all([fx.cached.close(), fx.uncached.close()]));

  it("plans from a tail of fewer messages than the responder takes when they hold its character bound", async () => {
    // 5,000 four-byte characters a message: the tail holds two whole lines (the newest reply and user message)
    const tailRead = async (chars: number) => {
      const [a, b] = await Promise.all([
        longSession(fx.cached, 12, chars, "😀"),
        longSession(fx.uncached, 12, chars, "😀"),
      ]);
      await fx.cached.chat.authorize(a.id, a.token);
      const auth = await fx.cached.chat.authorize(a.id, a.token, await readTail(a.id));
      seen.length = 0;
      const snapshots = await snapshotReads(() => fx.cached.chat.postMessage(auth, "last"));
      await fx.uncached.chat.postMessage(await fx.uncached.chat.authorize(b.id, b.token), "last");
      return { count: auth.newest?.count, snapshots, contexts: seen.splice(0) };
    };
    const read = await tailRead(5000);
    expect(read.count).toBeLessThan(4);
    expect(read.snapshots).toBe(0);
    const [fromTail, fromPostgres] = read.contexts;
    expect(fromTail).toEqual(fromPostgres);
  });
});

describe("a page of a long history", () => {
  it("is cut from the end read ahead when it holds the page, else from more of the start, else from all", async () => {
    const { id, token } = await longSession(cached, 30, 1500);
    const truth = (await loadSnapshot(cached.db.pool, id, HISTORY_CACHE_MAX))!.messages;
    const lastSeq = truth.at(-1)!.seq;
    // [read ahead, after_seq, limit, further reads: [pipelines (a larger read of the start), MGETs (the whole entry)]]
    const cases: [SessionRead, number, number, [number, number]][] = [
      ["head", 0, 5, [0, 0]], // a first page
      ["tail", lastSeq - 3, 50, [0, 0]], // a client polling for the last turn
      ["tail", lastSeq, 50, [0, 0]], // nothing new
      ["tail", 0, 5, [0, 1]], // the tail does not reach back to the start
      ["head", 0, 20, [1, 0]], // the first 32 KB hold fewer lines than the page: read as many more as it needs
      ["head", 0, 200, [1, 0]], // … which here is the whole history, read as the start
    ];
    for (const [read, afterSeq, limit, further] of cases) {
      await cached.chat.authorize(id, token); // as in finalContexts: the read ahead must not be ignored
      const auth = await cached.chat.authorize(id, token, await readAhead(id, read));
      expect(auth.historyText).toBeNull();
      const pipelines = vi.spyOn(Redis.prototype, "pipeline");
      const mgets = vi.spyOn(Redis.prototype, "mget");
      try {
        const page = await cached.chat.historyJson(auth, afterSeq, limit);
        expect(page.fromCache).toBe(true);
        expect(JSON.parse(page.json)).toEqual(pageOf(truth, afterSeq, limit));
        const reads = [pipelines.mock.calls.length, mgets.mock.calls.length];
        expect([read, afterSeq, limit, reads]).toEqual([read, afterSeq, limit, further]);
      } finally {
        pipelines.mockRestore();
        mgets.mockRestore();
      }
    }
  });
});

describe("the read ahead and the invalidations of other instances", () => {
  it("when a read applies them first (once a second), it reads again the same part of the session", async () => {
    const { id, token } = await longSession(cached, 30, 1500);
    await new Promise((r) => setTimeout(r, 1100)); // the next cache read applies other instances' invalidations
    const mgets = vi.spyOn(Redis.prototype, "mget");
    try {
      const auth = await cached.chat.authorize(id, token, await readTail(id));
      expect(auth.historyText).toBeNull();
      expect(auth.newest?.count).toBeGreaterThan(4);
      expect(mgets).not.toHaveBeenCalled();
    } finally {
      mgets.mockRestore();
    }
  });
});
