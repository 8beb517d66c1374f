import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheGuard } from "../../layers/chat/cache/cache-guard.ts";
import { SessionCache } from "../../layers/chat/cache/session-cache.ts";
import { ChatService, HISTORY_CACHE_MAX } from "../../layers/chat/chat/chat-service.ts";
import { loadSnapshot } from "../../layers/chat/db/chat-store.ts";
import { outboxOnlyPublisher } from "../../layers/chat/events/event-publisher.ts";
import { builtinResponder } from "../../layers/chat/responders/builtin-responder.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * A post's write-through (the append to the cached history) that times out is tried once more before the cache is
 * turned off: the real Redis, with faults injected around the real append.
 * - "before": the attempt fails without reaching Redis;
 * - "after": the attempt ran in Redis but its reply is lost (what a timeout on a busy event loop looks like);
 * - "closed": a connection error, which is not retried.
 */
type Fault = "before" | "after" | "closed";

class FlakyCache extends SessionCache {
  faults: Fault[] = [];
  appendCalls = 0;

  override async append(...args: Parameters<SessionCache["append"]>): Promise<boolean> {
    this.appendCalls++;
    const fault = this.faults.shift();
    if (fault === "before") throw new Error("Command timed out");
    if (fault === "closed") throw new Error("Connection is closed.");
    const stored = await super.append(...args);
    if (fault === "after") throw new Error("Command timed out");
    return stored;
  }
}

let f: ChatFixture;
let flaky: FlakyCache;
let guard: CacheGuard;
let chat: ChatService;

beforeAll(async () => {
  f = await chatFixture();
  flaky = new FlakyCache(f.redis!, {
    sessionTtlSeconds: 300,
    historyTtlSeconds: 300,
    historyMaxBytes: 1 << 20,
  });
  guard = new CacheGuard(flaky, f.db.pool);
  chat = new ChatService({
    pool: f.db.pool,
    cache: guard,
    responder: builtinResponder,
    publisher: outboxOnlyPublisher,
    config: f.config,
  });
});
afterAll(() => f.close());

async function postWith(faults: Fault[]) {
  const created = await chat.createSession({});
  const id = created.session.session_id;
  const auth = () => chat.authorize(id, created.token);
  await chat.postMessage(await auth(), "first");
  // wait out a distrust left by an earlier case, so each case starts with the cache trusted
  await new Promise((r) => setTimeout(r, guard.trusted ? 0 : 1100));
  await chat.history(await auth(), 0, 50);
  expect(guard.trusted).toBe(true);
  flaky.faults = faults;
  flaky.appendCalls = 0;
  await chat.postMessage(await auth(), "second");
  const invalidations = await f.db.pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM cache_invalidations WHERE session_id = $1",
    [id],
  );
  return { id, calls: flaky.appendCalls, invalidations: invalidations.rows[0]?.n };
}

async function cachedHistoryIsPostgres(id: string) {
  const truth = await loadSnapshot(f.db.pool, id, HISTORY_CACHE_MAX);
  const cached = await flaky.get(id);
  expect(cached.kind).toBe("hit");
  if (cached.kind !== "hit") return;
  expect(cached.value.session.generation).toBe(truth?.session.generation);
  expect(cached.value.history).toEqual(truth?.messages);
}

describe("write-through after a post, when Redis times out", () => {
  // faults, then: append calls, cache still trusted, invalidation rows, cached history checked against Postgres
  it.each([
    [
      "a timeout before Redis ran the append: retried once, the cache stays on and holds Postgres' history",
      ["before"],
      { calls: 2, trusted: true, invalidations: 0 },
    ],
    [
      "a lost reply after Redis ran the append: the retry keeps the appended history (not appended twice, not dropped)",
      ["after"],
      { calls: 2, trusted: true, invalidations: 0 },
    ],
    [
      "two timeouts in a row: the cache goes off and the session is recorded for invalidation",
      ["before", "before"],
      { calls: 2, trusted: false, invalidations: 1 },
    ],
    [
      "a connection error is not retried: the cache goes off at once",
      ["closed"],
      { calls: 1, trusted: false, invalidations: 1 },
    ],
  ] as [string, Fault[], { calls: number; trusted: boolean; invalidations: number }][])(
    "%s",
    async (_name, faults, expected) => {
      const r = await postWith(faults);
      expect(r.calls).toBe(expected.calls);
      expect(guard.trusted).toBe(expected.trusted);
      expect(r.invalidations).toBe(expected.invalidations);
      if (expected.trusted) await cachedHistoryIsPostgres(r.id);
    },
  );
});
