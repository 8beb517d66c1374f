import { randomBytes, randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureAppRole, scramVerifier } from "../../layers/chat/db/app-role.ts";
import type { Queryable } from "../../layers/chat/db/chat-store.ts";
import { chatEvent } from "../../layers/chat/events/cloudevents.ts";
import { relayOutbox } from "../../layers/chat/events/outbox-relay.ts";
import { runMaintenance } from "../../layers/chat/maintenance/maintenance.ts";
import { applyEvents } from "../../layers/chat/projection/activity-projection.ts";
import { type ChatFixture, chatFixture } from "../helpers/chat-fixture.ts";
import { ADMIN_URL } from "../helpers/global-database.ts";
import { scramVerifies } from "../helpers/scram-verifies.ts";

/**
 * In AWS the functions connect as an application role that may only read and write rows (the migrations run as
 * the database's owner and grant it): every path of the product must work with no more than that.
 */
const role = `chat_app_t_${randomBytes(5).toString("hex")}`;
let fx: ChatFixture;

beforeAll(async () => {
  fx = await chatFixture({ databaseUser: role });
  await ensureAppRole(fx.db.pool, { username: role, password: randomBytes(16).toString("hex") });
});
afterAll(async () => {
  await fx?.close();
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP ROLE IF EXISTS ${role}`);
  await admin.end();
});

describe("the application role", () => {
  it("runs every path of the product: sessions, posts with keys and replays, edits, deletes, erase, relay, maintenance, consumer", async () => {
    const who = (await fx.servicePool.query("SELECT current_user AS u")).rows[0].u;
    expect(who).toBe(role);
    const key = { scope: "sessions-create:app-role", key: randomUUID(), requestHash: "h" };
    const created = await fx.chat.createSession({ metadata: { via: "app-role" } }, key);
    const id = created.session.session_id;
    const auth = () => fx.chat.authorize(id, created.token);
    const postKey = { scope: `messages-post:${id}`, key: randomUUID(), requestHash: "p" };
    const posted = await fx.chat.postMessage(await auth(), "hello", postKey);
    const replay = await fx.chat.postMessage(await auth(), "hello", postKey); // the claim protocol's statements
    expect(replay).toMatchObject({ replayed: true, message: { message_id: posted.message.message_id } });
    await fx.chat.editMessage(await auth(), {
      message_id: posted.message.message_id,
      content: "hello again",
    });
    await fx.chat.deleteMessage(await auth(), posted.reply.message_id);
    const page = await fx.chat.history(await auth(), 0, 50);
    expect(page.messages.map((m) => m.content)).toEqual([expect.any(String), "hello again"]);

    const other = await fx.chat.createSession({});
    await fx.chat.eraseSession(await fx.chat.authorize(other.session.session_id, other.token));

    const published: string[] = [];
    const relayed = await relayOutbox(
      fx.servicePool,
      async (events) => void published.push(...events.map((e) => e.id)),
      {
        batchSize: 100,
        batchBytes: 1_000_000,
        timeBudgetMs: 10_000,
      },
    );
    expect(relayed.error).toBeUndefined();
    expect(published.length).toBeGreaterThan(0);

    const maintained = await runMaintenance(fx.servicePool, fx.cache, {
      outboxRetentionHours: 24,
      consumedEventsRetentionHours: 336,
      sessionRetentionDays: 30,
    });
    expect(maintained.sessionsFailed).toBe(0);

    const event = chatEvent("chat.session.created", id, new Date().toISOString(), {
      session_id: id,
      user_id: null,
    });
    expect(await applyEvents(fx.servicePool, [event])).toEqual({ applied: 1, duplicates: 0 });
  });

  it("cannot change the schema, empty a table, or read the migrations' bookkeeping", async () => {
    const refused = (sql: string) =>
      fx.servicePool.query(sql).then(
        () => "allowed",
        (err: { code?: string }) => err.code,
      );
    // 42501: insufficient_privilege
    expect(await refused("CREATE TABLE app_role_probe (id int)")).toBe("42501");
    expect(await refused("ALTER TABLE sessions ADD COLUMN probe int")).toBe("42501");
    expect(await refused("DROP TABLE consumed_events")).toBe("42501");
    expect(await refused("TRUNCATE outbox")).toBe("42501");
    expect(await refused("SELECT * FROM pgmigrations")).toBe("42501");
    expect(await refused("SELECT nextval('pgmigrations_id_seq')")).toBe("42501");
  });

  it("refuses a password that is not printable ASCII: Postgres would prepare it (SASLprep) before hashing it", () => {
    expect(() => scramVerifier("pässword")).toThrow(/printable ASCII/);
    expect(() => scramVerifier("tab\tin")).toThrow(/printable ASCII/);
    expect(scramVerifies(scramVerifier("plain ~ascii!"), "plain ~ascii!")).toBe(true);
  });

  it("is granted again on every deploy without failing, and takes its secret's password (a replaced secret)", async () => {
    const hash = async () =>
      (await fx.db.pool.query("SELECT rolpassword FROM pg_authid WHERE rolname = $1", [role])).rows[0]
        ?.rolpassword;
    const before = await hash();
    expect(before).toMatch(/^SCRAM-SHA-256\$/);
    const sent: string[] = [];
    const recording = {
      query: ((text: string, values?: unknown[]) => {
        sent.push(text);
        return fx.db.pool.query(text, values);
      }) as Queryable["query"],
    };
    await ensureAppRole(recording, { username: role, password: "another-password" });
    const after = await hash();
    // the password never travels in a statement's text (a server logging DDL would write it down)
    expect(sent.some((t) => /PASSWORD 'SCRAM-SHA-256\$/.test(t))).toBe(true);
    expect(sent.join("\n")).not.toContain("another-password");
    expect(after).not.toBe(before);
    expect(scramVerifies(after, "another-password")).toBe(true);
    expect(scramVerifies(after, "a-wrong-password")).toBe(false);
    expect((await fx.servicePool.query("SELECT count(*)::int AS n FROM sessions")).rows[0].n).toBeGreaterThan(
      0,
    );
  });

  it("may write a table a later migration adds from the migration's own commit, not only from the deploy's grant", async () => {
    // As 1795737600000 did with outbox_pending: a trigger makes the previous release's writes reach a new table.
    // The deploy grants after its last migration, and not at all when it fails and rolls back (migration-set.ts).
    const owner = fx.db.pool;
    await owner.query(`CREATE TABLE later_queue (n bigserial PRIMARY KEY, id bigint NOT NULL);
      CREATE FUNCTION later_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO later_queue (id) SELECT id FROM added; RETURN NULL; END $$;
      CREATE TRIGGER later_enqueue AFTER INSERT ON outbox REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION later_enqueue();`);
    try {
      const created = await fx.chat.createSession({ metadata: {} });
      expect(created.session.session_id).toBeTruthy();
      expect((await owner.query("SELECT count(*)::int AS n FROM later_queue")).rows[0].n).toBeGreaterThan(0);
    } finally {
      await owner.query(
        "DROP TRIGGER later_enqueue ON outbox; DROP FUNCTION later_enqueue(); DROP TABLE later_queue",
      );
    }
  });
});
