import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionCache } from "../../layers/chat/cache/session-cache.ts";
import { loadSnapshot } from "../../layers/chat/db/chat-store.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";
import { type PrivateRedis, startPrivateRedis } from "../helpers/private-redis.ts";

describe("cache on the shared Redis", () => {
  let f: ChatFixture;
  beforeAll(async () => {
    f = await chatFixture();
  });
  afterAll(() => f.close());

  it("serves history from the cache after the first read, and never the old state after edit or delete", async () => {
    const created = await f.chat.createSession({});
    const id = created.session.session_id;
    const auth = () => f.chat.authorize(id, created.token);
    const turn = await f.chat.postMessage(await auth(), "original");
    const warm = await f.chat.history(await auth(), 0, 50);
    expect(warm.fromCache).toBe(true);
    await f.chat.editMessage(await auth(), { message_id: turn.message.message_id, content: "edited" });
    const afterEdit = await f.chat.history(await auth(), 0, 50);
    expect(afterEdit.messages.find((m) => m.message_id === turn.message.message_id)?.content).toBe("edited");
    await f.chat.deleteMessage(await auth(), turn.message.message_id);
    const afterDelete = await f.chat.history(await auth(), 0, 50);
    expect(afterDelete.messages.map((m) => m.message_id)).not.toContain(turn.message.message_id);
  });

  it("a stale reader cannot refill the cache after a writer stored a newer generation", async () => {
    const created = await f.chat.createSession({});
    const id = created.session.session_id;
    const auth = () => f.chat.authorize(id, created.token);
    const turn = await f.chat.postMessage(await auth(), "before");
    // A slow reader read the session here, before the edit…
    const stale = await loadSnapshot(f.db.pool, id, 500);
    await f.chat.editMessage(await auth(), { message_id: turn.message.message_id, content: "after" });
    // …and writes what it read after the writer stored the new state.
    const cache = new SessionCache(f.redis!, {
      sessionTtlSeconds: 300,
      historyTtlSeconds: 300,
      historyMaxBytes: 1 << 20,
    });
    expect(await cache.put(stale!.session, stale!.messages)).toBe(false);
    const page = await f.chat.history(await auth(), 0, 50);
    expect(page.messages.find((m) => m.message_id === turn.message.message_id)?.content).toBe("after");
  });

  it("racing readers during 20 edits never leave an old version in the cache", async () => {
    const created = await f.chat.createSession({});
    const id = created.session.session_id;
    const auth = () => f.chat.authorize(id, created.token);
    const turn = await f.chat.postMessage(await auth(), "v1");
    // the generation stamped on the session entry (a placeholder's too), and the one Postgres holds
    const cachedGeneration = async () => Number((await f.redis!.get(`chat:{${id}}:s`))?.split("|")[0]);
    const storedGeneration = async () =>
      Number(
        (await f.db.pool.query("SELECT generation FROM sessions WHERE session_id = $1", [id])).rows[0]
          .generation,
      );
    let stop = false;
    let fills = 0;
    // Readers that miss read Postgres and fill the cache; one whose read came before an edit fills after it.
    const readers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const hit = await f.cache!.get(id);
        if (hit.kind !== "hit") {
          const snap = await loadSnapshot(f.db.pool, id, 500);
          if (snap) await f.cache!.fill(snap.session, snap.messages);
          fills++;
        }
      }
    });
    try {
      for (let v = 2; v <= 21; v++) {
        // one reader for certain: it read the session before this edit, and fills through the real path after it
        const stale = await loadSnapshot(f.db.pool, id, 500);
        await f.chat.editMessage(await auth(), { message_id: turn.message.message_id, content: `v${v}` });
        await f.cache!.fill(stale!.session, stale!.messages);
        expect(await cachedGeneration()).toBe(await storedGeneration());
        const page = await f.chat.history(await auth(), 0, 50);
        expect(page.messages.find((m) => m.message_id === turn.message.message_id)?.content).toBe(`v${v}`);
        // Forget the entry as the product does (a placeholder at the current generation), so the racing readers
        // miss and fill from Postgres while the next edit runs.
        await f.sessionCache!.invalidate([{ sessionId: id, generation: await storedGeneration() }]);
      }
    } finally {
      // a failed expectation must not leave the readers running into the next tests
      stop = true;
      await Promise.all(readers);
    }
    expect(fills).toBeGreaterThan(0);
    expect(await cachedGeneration()).toBe(await storedGeneration());
    const last = await f.chat.history(await auth(), 0, 50);
    expect(last.messages.find((m) => m.message_id === turn.message.message_id)?.content).toBe("v21");
  });

  it("an erased session cannot be refilled by a reader that read it before the erase", async () => {
    const created = await f.chat.createSession({});
    const id = created.session.session_id;
    const stale = await loadSnapshot(f.db.pool, id, 500);
    await f.chat.eraseSession(await f.chat.authorize(id, created.token));
    await f.cache!.fill(stale!.session, stale!.messages);
    expect((await f.cache!.get(id)).kind).toBe("erased");
    await expect(f.chat.authorize(id, created.token)).rejects.toMatchObject({ code: "unauthorized" });
  });
});

describe("Redis stopped or stalled (a private redis-server)", () => {
  let redis: PrivateRedis;
  let f: ChatFixture;
  beforeAll(async () => {
    redis = await startPrivateRedis();
    f = await chatFixture({ redisUrl: redis.url });
  });
  afterAll(async () => {
    await f.close();
    await redis.stop();
  });

  it("keeps answering from Postgres, each call bounded by the Redis timeout, and serves nothing stale after it returns", async () => {
    const created = await f.chat.createSession({});
    const id = created.session.session_id;
    const auth = () => f.chat.authorize(id, created.token);
    const turn = await f.chat.postMessage(await auth(), "cached text");
    expect((await f.chat.history(await auth(), 0, 50)).fromCache).toBe(true);

    // Stall: the server keeps the connection but answers nothing; the cached entry is still in it.
    redis.pause();
    const timings: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await f.chat.editMessage(await auth(), {
        message_id: turn.message.message_id,
        content: `during stall ${i}`,
      });
      const page = await f.chat.history(await auth(), 0, 50);
      timings.push(performance.now() - t0);
      expect(page.messages.find((m) => m.message_id === turn.message.message_id)?.content).toBe(
        `during stall ${i}`,
      );
    }
    // the first call pays at most a command timeout or two; later ones skip Redis entirely
    expect(Math.max(...timings)).toBeLessThan(f.config.REDIS_COMMAND_TIMEOUT_MS * 4 + 200);
    const pending = await f.db.pool.query(
      "SELECT count(*)::int AS n FROM cache_invalidations WHERE session_id = $1",
      [id],
    );
    expect(pending.rows[0].n).toBe(1);

    // Back: the old entry ("cached text") is still in Redis, but must never be served.
    redis.resume();
    await new Promise((r) => setTimeout(r, 1100));
    for (let i = 0; i < 3; i++) {
      const page = await f.chat.history(await auth(), 0, 50);
      expect(page.messages.find((m) => m.message_id === turn.message.message_id)?.content).toBe(
        "during stall 4",
      );
    }
    const drained = await f.db.pool.query("SELECT count(*)::int AS n FROM cache_invalidations");
    expect(drained.rows[0].n).toBe(0);
    expect(f.cache!.trusted).toBe(true);
  });

  it("with the server stopped, every operation still succeeds; after a restart the cache fills again", async () => {
    const created = await f.chat.createSession({});
    const id = created.session.session_id;
    const auth = () => f.chat.authorize(id, created.token);
    await redis.stop();
    const t0 = performance.now();
    const turn = await f.chat.postMessage(await auth(), "while redis is down");
    await f.chat.editMessage(await auth(), {
      message_id: turn.message.message_id,
      content: "edited while down",
    });
    const page = await f.chat.history(await auth(), 0, 50);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(page.fromCache).toBe(false);
    expect(page.messages.at(-2)?.content).toBe("edited while down");
    await redis.start();
    await new Promise((r) => setTimeout(r, 1200));
    await f.chat.history(await auth(), 0, 50);
    const again = await f.chat.history(await auth(), 0, 50);
    expect(again.fromCache).toBe(true);
    expect(again.messages.at(-2)?.content).toBe("edited while down");
  });
});
