import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * A Redis that comes back older: a failover to a replica that had not received the last writes (replication is
 * asynchronous), or a restore. Its entries are consistent, but of a generation Postgres has left behind; reads are
 * served from them until their TTL (docs/reliability.md, bugs 114–117), and a change must neither be refused from
 * them nor leave them in place.
 */
let f: ChatFixture;
beforeAll(async () => {
  f = await chatFixture();
});
afterAll(() => f.close());

type Saved = { key: string; dump: Buffer | null; ttlMs: number }[];

/** The session's cache entries as they are now, with their remaining TTLs (what a replica would hold). */
async function save(sessionId: string): Promise<Saved> {
  const redis = f.redis!;
  const saved: Saved = [];
  for (const key of [`chat:{${sessionId}}:s`, `chat:{${sessionId}}:h`])
    saved.push({ key, dump: await redis.dumpBuffer(key), ttlMs: await redis.pttl(key) });
  return saved;
}

/** Puts saved entries back in place of whatever the writes since then stored: the failover. */
async function rollBack(saved: Saved): Promise<void> {
  for (const { key, dump, ttlMs } of saved) {
    if (dump) await f.redis!.restore(key, ttlMs, dump, "REPLACE");
    else await f.redis!.del(key);
  }
}

async function started() {
  const created = await f.chat.createSession({});
  const id = created.session.session_id;
  const auth = () => f.chat.authorize(id, created.token);
  const shown = async () => (await f.chat.history(await auth(), 0, 50)).messages;
  return { id, auth, shown };
}

describe("a cache rolled back to older entries", () => {
  it("does not refuse a change: an acknowledged message it lacks, or its current version, is edited", async () => {
    const { id, auth, shown } = await started();
    const first = await f.chat.postMessage(await auth(), "one");
    await shown();
    const saved = await save(id);
    const second = await f.chat.postMessage(await auth(), "two");
    await f.chat.editMessage(await auth(), { message_id: first.message.message_id, content: "one, v2" });
    await rollBack(saved);
    expect((await shown()).map((m) => m.content)).not.toContain("two"); // the rolled-back entry is served

    const edited = await f.chat.editMessage(await auth(), {
      message_id: second.message.message_id,
      content: "two, v2",
    });
    expect(edited.message.version).toBe(2);
    await rollBack(saved);
    const again = await f.chat.editMessage(await auth(), {
      message_id: first.message.message_id,
      content: "one, v3",
      expected_version: 2,
    });
    expect(again.message.version).toBe(3);
    await rollBack(saved);
    await f.chat.deleteMessage(await auth(), second.message.message_id);
    const after = (await shown()).map((m) => m.content);
    expect(after).toContain("one, v3");
    expect(after).not.toContain("two, v2");
  });

  it("a change refused under the row lock puts the current state back: a deleted message is not shown again", async () => {
    const { id, auth, shown } = await started();
    await f.chat.postMessage(await auth(), "one");
    const gone = await f.chat.postMessage(await auth(), "two");
    await shown();
    const saved = await save(id);
    await f.chat.deleteMessage(await auth(), gone.message.message_id);
    await rollBack(saved);
    expect((await shown()).map((m) => m.content)).toContain("two");

    // the user deletes it again: it is gone (404), and no longer shown
    await expect(f.chat.deleteMessage(await auth(), gone.message.message_id)).rejects.toMatchObject({
      code: "message_not_found",
    });
    expect((await shown()).map((m) => m.content)).not.toContain("two");
  });

  it("an erased session it serves again is tombstoned by the next change or a repeated DELETE", async () => {
    for (const retry of ["post", "erase"] as const) {
      const { id, auth, shown } = await started();
      await f.chat.postMessage(await auth(), "private");
      await shown();
      const saved = await save(id);
      await f.chat.eraseSession(await auth());
      await rollBack(saved);
      expect((await shown()).map((m) => m.content)).toContain("private");

      if (retry === "post")
        await expect(f.chat.postMessage(await auth(), "again")).rejects.toMatchObject({
          code: "unauthorized",
        });
      else await f.chat.eraseSession(await auth()); // 204, as for any erase of an erased session
      await expect(auth()).rejects.toMatchObject({ code: "unauthorized" });
    }
  });
});
