import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { IdempotencyRequest } from "../../layers/chat/db/idempotency-store.ts";
import { builtinResponder } from "../../layers/chat/responders/builtin-responder.ts";
import type { Responder } from "../../layers/chat/responders/responder.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * The Idempotency-Key fast path: the change statement itself creates the completed record (no claim round
 * trip); a key that already has a record makes that statement fail and fall back to the claim protocol.
 */
let f: ChatFixture;
let costly: ChatFixture;
let costlyCalls = 0;
const costlyResponder: Responder = {
  name: "paid-model",
  costly: true,
  async respond(history) {
    costlyCalls++;
    await new Promise((r) => setTimeout(r, 50)); // a slow model: duplicates arrive while it answers
    return builtinResponder.respond(history);
  },
};

beforeAll(async () => {
  [f, costly] = await Promise.all([chatFixture(), chatFixture({ responder: costlyResponder })]);
});
afterAll(() => Promise.all([f.close(), costly.close()]));
afterEach(() => vi.restoreAllMocks());

/** Names of the prepared statements the service runs while `work` runs. */
async function statementsDuring(work: () => Promise<unknown>): Promise<string[]> {
  const names: string[] = [];
  const original = pg.Client.prototype.query;
  vi.spyOn(pg.Client.prototype, "query").mockImplementation(function (this: pg.Client, ...args: unknown[]) {
    const cfg = args[0] as { name?: string } | string;
    names.push(typeof cfg === "string" ? cfg : (cfg.name ?? "unnamed"));
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original);
  await work();
  vi.restoreAllMocks();
  return names;
}

const keyFor = (scope: string, key: string, body: unknown): IdempotencyRequest => ({
  scope,
  key,
  requestHash: JSON.stringify(body),
});

async function session(fx: ChatFixture) {
  const created = await fx.chat.createSession({});
  const id = created.session.session_id;
  return { id, auth: () => fx.chat.authorize(id, created.token) };
}

describe("Idempotency-Key fast path", () => {
  it("a first post with a key writes the turn and the completed record in one statement, with no claim", async () => {
    const s = await session(f);
    const auth = await s.auth();
    const idem = keyFor(`messages-post:${s.id}`, "k-first", { content: "hi" });
    const names = await statementsDuring(() => f.chat.postMessage(auth, "hi", idem));
    expect(names.filter((n) => n.startsWith("idempotency_"))).toEqual([]);
    expect(names.filter((n) => n.includes("session_change"))).toEqual(["append_session_change_claim"]);
    const rec = await f.db.pool.query(
      `SELECT status, status_code, request_hash, extract(epoch FROM expires_at - now())::float AS kept_seconds
         FROM idempotency_records WHERE scope = $1`,
      [idem.scope],
    );
    const { kept_seconds: kept, ...record } = rec.rows[0];
    expect(record).toEqual({ status: "completed", status_code: 201, request_hash: idem.requestHash });
    // kept for IDEMPOTENCY_TTL_SECONDS (less the moments since), for retries that long after
    expect(kept).toBeLessThanOrEqual(f.config.IDEMPOTENCY_TTL_SECONDS);
    expect(kept).toBeGreaterThan(f.config.IDEMPOTENCY_TTL_SECONDS - 60);
  });

  it("a repeated key replays the stored turn and changes nothing; another body with it is 422", async () => {
    const s = await session(f);
    const idem = keyFor(`messages-post:${s.id}`, "k-again", { content: "once" });
    const first = await f.chat.postMessage(await s.auth(), "once", idem);
    const again = await f.chat.postMessage(await s.auth(), "once", idem);
    expect(again).toEqual({ ...first, replayed: true });
    await expect(
      f.chat.postMessage(await s.auth(), "other", keyFor(idem.scope, idem.key, { content: "other" })),
    ).rejects.toMatchObject({ code: "idempotency_key_reused" });
    const count = await f.db.pool.query("SELECT message_count FROM sessions WHERE session_id = $1", [s.id]);
    expect(count.rows[0].message_count).toBe(3);
  });

  it("concurrent duplicates store one turn; every answer is that turn", async () => {
    const s = await session(f);
    const auth = await s.auth();
    const idem = keyFor(`messages-post:${s.id}`, "k-race", { content: "race" });
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => f.chat.postMessage(auth, "race", idem)),
    );
    const ids = new Set(answers.map((a) => a.message.message_id));
    expect(ids.size).toBe(1);
    expect(answers.filter((a) => !a.replayed)).toHaveLength(1);
    const rows = await f.db.pool.query("SELECT count(*)::int AS n FROM messages WHERE session_id = $1", [
      s.id,
    ]);
    expect(rows.rows[0].n).toBe(3);
  });

  it("an expired record for the key is taken over: the request runs and the record is replaced", async () => {
    const s = await session(f);
    const idem = keyFor(`messages-post:${s.id}`, "k-expired", { content: "new" });
    const first = await f.chat.postMessage(
      await s.auth(),
      "old",
      keyFor(idem.scope, idem.key, { content: "old" }),
    );
    await f.db.pool.query(
      "UPDATE idempotency_records SET expires_at = now() - interval '1 second' WHERE scope = $1",
      [idem.scope],
    );
    const taken = await f.chat.postMessage(await s.auth(), "new", idem);
    expect(taken.replayed).toBeUndefined();
    expect(taken.message.seq).toBe(first.message.seq + 2);
    const rec = await f.db.pool.query(
      "SELECT request_hash, status FROM idempotency_records WHERE scope = $1",
      [idem.scope],
    );
    expect(rec.rows).toEqual([{ request_hash: idem.requestHash, status: "completed" }]);
  });

  it("sessions/create with a key: one statement; a repeat replays the same session and token", async () => {
    const idem = keyFor("sessions-create", `k-create-${Date.now()}`, {});
    let created: Awaited<ReturnType<typeof f.chat.createSession>> | undefined;
    const names = await statementsDuring(async () => {
      created = await f.chat.createSession({}, idem);
    });
    expect(names.filter((n) => n.startsWith("idempotency_") || n.startsWith("insert_session"))).toEqual([
      "insert_session_claim",
    ]);
    const again = await f.chat.createSession({}, idem);
    expect(again).toEqual({ ...created, replayed: true });
  });
});

describe("with a costly responder", () => {
  it("claims the key before answering, so concurrent duplicates pay for one answer", async () => {
    const s = await session(costly);
    const auth = await s.auth();
    const idem = keyFor(`messages-post:${s.id}`, "k-paid", { content: "pay once" });
    costlyCalls = 0;
    let answers: Awaited<ReturnType<typeof costly.chat.postMessage>>[] = [];
    const names = await statementsDuring(async () => {
      answers = await Promise.all(
        Array.from({ length: 4 }, () => costly.chat.postMessage(auth, "pay once", idem)),
      );
    });
    expect(costlyCalls).toBe(1);
    expect(new Set(answers.map((a) => a.reply.message_id)).size).toBe(1);
    expect(names).toContain("idempotency_claim");
    expect(names.filter((n) => n.includes("session_change"))).toEqual(["append_session_change_complete"]);
  });
});
