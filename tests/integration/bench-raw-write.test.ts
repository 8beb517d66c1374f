import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRawSessions, rawPost } from "../../bench/lib/raw-write.ts";
import { type ChatFixture, chatFixture, SHARED_REDIS_URL } from "../helpers/chat-fixture.ts";

/**
 * The benchmark's raw limit path is the reference every POST figure is divided by: it must make the same durable
 * writes as one POST with an Idempotency-Key (same tables, rows and filled columns, so the same indexes and
 * triggers), or the ratio flatters the reference. Compared row by row on one database, not timed.
 */
const TABLES = [
  "sessions",
  "messages",
  "outbox",
  "outbox_pending",
  "idempotency_records",
  "cache_invalidations",
  "session_activity",
  "consumed_events",
];

let fx: ChatFixture;
beforeAll(async () => {
  fx = await chatFixture({ redisUrl: SHARED_REDIS_URL });
});
afterAll(async () => {
  await fx.close();
});

type Snapshot = Record<string, Set<string>>;
async function snapshot(): Promise<Snapshot> {
  const out: Snapshot = {};
  for (const t of TABLES) {
    const rows = await fx.db.pool.query(`SELECT to_jsonb(t) AS r FROM ${t} AS t`);
    out[t] = new Set(rows.rows.map((x) => JSON.stringify(x.r)));
  }
  return out;
}

/** Per table, the rows a write added or changed, each as the sorted list of its non-null columns. */
async function written(write: () => Promise<unknown>): Promise<Record<string, string[]>> {
  const before = await snapshot();
  await write();
  const after = await snapshot();
  const out: Record<string, string[]> = {};
  for (const t of TABLES) {
    out[t] = [...(after[t] as Set<string>)]
      .filter((r) => !before[t]?.has(r))
      .map((r) =>
        Object.entries(JSON.parse(r) as Record<string, unknown>)
          .filter(([, v]) => v !== null)
          .map(([k]) => k)
          .sort()
          .join(","),
      )
      .sort();
  }
  return out;
}

describe("the benchmark's raw limit path", () => {
  it("writes the rows and columns of one POST with an Idempotency-Key", async () => {
    const created = await fx.chat.createSession({});
    const id = created.session.session_id;
    const auth = await fx.chat.authorize(id, created.token);
    const product = await written(() =>
      fx.chat.postMessage(auth, "Can you tell me a fun fact while I pack my bag?", {
        scope: `messages-post:${id}`,
        key: randomUUID(),
        requestHash: "h",
      }),
    );
    const [raw] = await createRawSessions(fx.db.pool, 1);
    if (!raw) throw new Error("no raw session");
    const bench = await written(() =>
      rawPost(fx.db.pool, null, raw, "Can you tell me a fun fact while I pack my bag?"),
    );
    expect(product.idempotency_records?.[0]).toContain("message_ids"); // what the comparison is about
    expect(bench).toEqual(product);
  });

  it("gives the session the product's generation: the change's time in ms", async () => {
    const [raw] = await createRawSessions(fx.db.pool, 1);
    if (!raw) throw new Error("no raw session");
    const before = Date.now();
    await rawPost(fx.db.pool, null, raw, "hello");
    expect(raw.generation).toBeGreaterThanOrEqual(before);
    const record = await fx.db.pool.query("SELECT message_ids FROM idempotency_records WHERE scope = $1", [
      `messages-post:${raw.id}`,
    ]);
    expect(record.rows[0]?.message_ids).toHaveLength(2);
  });

  it("leaves Redis entries the product reads as a hit, sending a post's new lines, not the whole history", async () => {
    const redis = fx.redis as NonNullable<ChatFixture["redis"]>;
    // the argument bytes of each pipeline the raw path sends
    const sent: number[] = [];
    const recording = new Proxy(redis, {
      get(target, key) {
        if (key !== "pipeline") return Reflect.get(target, key);
        return () => {
          const real = target.pipeline();
          let bytes = 0;
          const wrapped: object = new Proxy(real, {
            get(p, k) {
              const v = Reflect.get(p, k);
              if (typeof v !== "function") return v;
              if (k === "exec")
                return () => {
                  sent.push(bytes);
                  return v.call(p);
                };
              return (...args: unknown[]) => {
                bytes += args.reduce<number>((n, a) => n + String(a).length, 0);
                v.apply(p, args);
                return wrapped;
              };
            },
          });
          return wrapped;
        };
      },
    });
    const [raw] = await createRawSessions(fx.db.pool, 1);
    if (!raw) throw new Error("no raw session");
    for (let i = 0; i < 25; i++) await rawPost(fx.db.pool, recording, raw, `post ${i}: a fun fact, please`);
    const cached = await fx.sessionCache?.get(raw.id);
    expect(cached?.kind).toBe("hit");
    if (cached?.kind !== "hit") return;
    expect(cached.value.session.generation).toBe(raw.generation);
    expect(cached.value.history?.map((m) => m.message_id)).toEqual(raw.history.map((m) => m.message_id));
    // the 25th post (a 51-message history) sends about what the 2nd does, as the product's append script
    expect(sent).toHaveLength(25);
    expect(sent[24]).toBeLessThan(2 * (sent[1] as number));
  });
});
