import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eraseRequest, eraseSessions } from "../../layers/chat/maintenance/maintenance.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";

/**
 * A database restored to an earlier point (a point-in-time or snapshot restore) while Redis keeps what it held: the
 * cache and the clients' ETags are of generations the restored rows had not reached yet. Simulated for one session:
 * its rows saved at T0 and put back after more changes, the cache left alone (docs/reliability.md, bug 146).
 */
let f: ChatFixture;
beforeAll(async () => {
  f = await chatFixture();
});
afterAll(() => f.close());

async function started() {
  const created = await f.chat.createSession({});
  const id = created.session.session_id;
  const auth = () => f.chat.authorize(id, created.token);
  const shown = async () => (await f.chat.history(await auth(), 0, 50)).messages.map((m) => m.content);
  return { id, auth, shown };
}

/** The session's rows as they are now (T0), and a function that puts them back: the restore. */
async function snapshot(id: string): Promise<() => Promise<void>> {
  const tag = id.replaceAll("-", "");
  await f.db.pool.query(`CREATE TABLE s_${tag} AS SELECT * FROM sessions WHERE session_id = $1`, [id]);
  await f.db.pool.query(`CREATE TABLE m_${tag} AS SELECT * FROM messages WHERE session_id = $1`, [id]);
  return async () => {
    await f.db.pool.query("DELETE FROM sessions WHERE session_id = $1", [id]);
    await f.db.pool.query(`INSERT INTO sessions SELECT * FROM s_${tag}`);
    await f.db.pool.query(`INSERT INTO messages SELECT * FROM m_${tag}`);
  };
}

describe("a database restored to an earlier point, Redis not", () => {
  it("a change after the restore is shown, not the entry of the lost changes", async () => {
    const { id, auth, shown } = await started();
    await f.chat.postMessage(await auth(), "one");
    const restore = await snapshot(id);
    const before: number[] = [];
    for (const text of ["two", "three"]) {
      await f.chat.postMessage(await auth(), text);
      expect(await shown()).toContain(text);
      before.push((await auth()).session.generation); // a client's ETag of this state
    }
    await restore();

    for (const text of ["after restore A", "after restore B"]) {
      await f.chat.postMessage(await auth(), text);
      const page = await shown();
      expect(page).toContain(text);
      expect(page).not.toContain("three"); // lost with the restore
    }
  });

  it("once the cache has let go, a client's ETag from before the restore does not match a new state (no 304)", async () => {
    const { id, auth, shown } = await started();
    const restore = await snapshot(id);
    const before: number[] = [];
    for (const text of ["two", "three"]) {
      await f.chat.postMessage(await auth(), text);
      before.push((await auth()).session.generation); // the history's ETag is W/"<generation>"
    }
    await restore();
    await f.redis!.del(`chat:{${id}}:s`, `chat:{${id}}:h`); // the entries' TTL has passed

    for (const text of ["after restore A", "after restore B"]) {
      await f.chat.postMessage(await auth(), text);
      expect(await shown()).toContain(text);
      // with W/"<the same generation>", a poll would get 304 and never see these messages
      expect(before).not.toContain((await auth()).session.generation);
    }
  });

  it("the runbook (docs/deploy.md): erasures since the restore point applied again, then the cache's entries dropped", async () => {
    const { id, auth } = await started();
    await f.chat.postMessage(await auth(), "kept");
    const untouched = await started(); // a session no one changes after the restore
    await f.chat.postMessage(await untouched.auth(), "before T0");
    const restoreUntouched = await snapshot(untouched.id);
    const restore = await snapshot(id);
    await f.chat.postMessage(await untouched.auth(), "lost");
    expect(await untouched.shown()).toContain("lost");
    await f.chat.postMessage(await auth(), "private");
    await f.chat.eraseSession(await auth()); // the user erased it after the restore point
    await restore();
    await restoreUntouched();

    // what the cache still serves: the lost message (until the entries' TTL), the erase's tombstone
    expect(await untouched.shown()).toContain("lost");
    // the tombstone hides the restored session: its own token gets 404 (the row is back) until the TTL, then all of it
    await expect(auth()).rejects.toMatchObject({ code: "session_not_found" });

    // step 1: the sessions of every chat.session.erased event on the topic since the restore point, erased again
    // (the maintenance function invoked with {"eraseSessions": [...]}); one erased twice since is absent
    const ids = eraseRequest({ eraseSessions: [id.toUpperCase(), crypto.randomUUID()] }) ?? [];
    expect(await eraseSessions(f.servicePool, f.cache, ids)).toEqual({ erased: 1, absent: 1, failed: [] });
    // step 2: the cache's entries dropped (here one session's keys; the runbook scans chat:{*)
    for (const s of [id, untouched.id])
      for await (const keys of f.redis!.scanStream({ match: `chat:{${s}}:*`, count: 1000 }))
        if ((keys as string[]).length) await f.redis!.unlink(...(keys as string[]));

    expect(await untouched.shown()).toEqual(expect.not.arrayContaining(["lost"]));
    expect(await untouched.shown()).toContain("before T0");
    await expect(auth()).rejects.toMatchObject({ code: "unauthorized" });
  });

  it("an operator's erase drops what the cache holds of the session at once, and one past its deadline erases nothing", async () => {
    const { id, auth, shown } = await started();
    await f.chat.postMessage(await auth(), "private");
    expect(await shown()).toContain("private"); // the session and its page now in the cache
    // out of time before it began: the session is left for the next invoke, whole
    expect(await eraseSessions(f.servicePool, f.cache, [id], Date.now())).toEqual({
      erased: 0,
      absent: 0,
      failed: [id],
    });
    expect(await shown()).toContain("private");
    expect(await eraseSessions(f.servicePool, f.cache, [id])).toEqual({ erased: 1, absent: 0, failed: [] });
    // not the cached session until its TTL: its tombstone answers at once, as after the user's own erase
    await expect(auth()).rejects.toMatchObject({ code: "unauthorized" });
  });
});
