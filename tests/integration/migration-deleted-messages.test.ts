import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatService } from "../../layers/chat/chat/chat-service.ts";
import { parseConfig } from "../../layers/chat/config.ts";
import { migrate } from "../../layers/chat/db/migrate.ts";
import { buildPool } from "../../layers/chat/db/pool.ts";
import { type CloudEvent, chatEvent } from "../../layers/chat/events/cloudevents.ts";
import { outboxOnlyPublisher } from "../../layers/chat/events/event-publisher.ts";
import { relayOutbox } from "../../layers/chat/events/outbox-relay.ts";
import { builtinResponder } from "../../layers/chat/responders/builtin-responder.ts";
import { ADMIN_URL, withDatabase } from "../helpers/global-database.ts";
import { adminQuery as admin, migrateBy, migrationFiles } from "../helpers/migrations.ts";

/**
 * A database upgraded from a release before 1795738100000 (the delete's redaction, bugs 69 and 70), holding
 * messages that release deleted: their created and edited events kept the text, and their deleted events the
 * message's version. The upgrade must leave no deleted text for the relay to publish, and no delete a consumer
 * applying "version above the one held" would skip.
 */
const files = migrationFiles();
const beforeRedaction = files.findIndex((f) => f.startsWith("1795738100000_"));
const name = `chat_mig_${randomBytes(6).toString("hex")}`;
const url = withDatabase(ADMIN_URL, name);
let pool: pg.Pool;

/** A delete as the release before the redaction made it: the text wiped from the row only, the version kept. */
async function oldDelete(messageId: string): Promise<CloudEvent> {
  const m = (
    await pool.query(
      `UPDATE messages SET deleted_at = now(), content = '' WHERE message_id = $1
       RETURNING session_id, message_id, seq, role, version`,
      [messageId],
    )
  ).rows[0];
  const event = chatEvent("chat.message.deleted", m.session_id, new Date().toISOString(), {
    session_id: m.session_id,
    message_id: m.message_id,
    seq: m.seq,
    role: m.role,
    version: m.version,
  });
  await pool.query(
    `UPDATE sessions SET message_count = message_count - 1, generation = generation + 1 WHERE session_id = $1`,
    [m.session_id],
  );
  await pool.query(
    `INSERT INTO outbox (event_id, session_id, event_type, event) VALUES ($1, $2, 'chat.message.deleted', $3)`,
    [event.id, m.session_id, JSON.stringify(event)],
  );
  return event;
}

const eventsOf = async (messageId: string) =>
  (
    await pool.query<{ event: CloudEvent; queued: boolean }>(
      `SELECT o.event, EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id) AS queued FROM outbox o
        WHERE o.event -> 'data' ->> 'message_id' = $1 ORDER BY o.id`,
      [messageId],
    )
  ).rows;

beforeAll(async () => {
  await admin(`CREATE DATABASE ${name}`);
  pool = new pg.Pool({ connectionString: url, max: 2 });
});
afterAll(async () => {
  await pool?.end();
  await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
});

describe("upgrading a database with messages deleted before the delete redacted the outbox", () => {
  it("redacts their events, gives their queued deletes a new version, and the relay publishes no deleted text", async () => {
    expect(beforeRedaction).toBeGreaterThan(0);
    await migrateBy(url, "up", beforeRedaction);
    // Sessions and posts as the older release wrote them (their statements are the same); no cache, no Kafka.
    const config = parseConfig({ DATABASE_URL: url, DB_POOL_MAX: "3" });
    const servicePool = buildPool(url, config);
    const chat = new ChatService({
      pool: servicePool,
      cache: null,
      responder: builtinResponder,
      publisher: outboxOnlyPublisher,
      config,
    });
    const created = await chat.createSession({ user_id: "ada" });
    const auth = () => chat.authorize(created.session.session_id, created.token);
    const published = await chat.postMessage(await auth(), "published then deleted: PUBLISHED-SECRET");
    const queued = await chat.postMessage(await auth(), "queued then deleted: QUEUED-SECRET");
    const edited = await chat.editMessage(await auth(), {
      message_id: queued.message.message_id,
      content: "queued, edited, then deleted: EDITED-SECRET",
    });
    const kept = await chat.postMessage(await auth(), "still here");
    await servicePool.end();
    // the older relay published everything up to the second post, then Kafka went away
    await pool.query(
      `DELETE FROM outbox_pending WHERE id <= (SELECT id FROM outbox WHERE event_type = 'chat.message.created'
         AND event -> 'data' ->> 'message_id' = $1)`,
      [published.message.message_id],
    );
    await oldDelete(published.message.message_id);
    const oldDeleted = await oldDelete(queued.message.message_id);
    expect(oldDeleted.data).toMatchObject({ version: edited.message.version }); // the version reused

    await migrate(url);

    const publishedEvents = await eventsOf(published.message.message_id);
    expect(publishedEvents.map((e) => [e.event.type, e.queued])).toEqual([
      ["chat.message.created", false],
      ["chat.message.deleted", true],
    ]);
    // kept in the outbox after publishing: redacted as a delete now redacts it
    expect(publishedEvents[0]?.event.data).toMatchObject({ content: "" });

    const sent: CloudEvent[] = [];
    const relayed = await relayOutbox(
      pool,
      async (events) => {
        sent.push(...events);
      },
      { batchSize: 100, batchBytes: 1_000_000, timeBudgetMs: 20_000 },
    );
    expect(relayed.error).toBeUndefined();
    // the deleted messages' own events (a reply may quote a message: README, "Deleting, editing, erasing")
    const deletedIds = [published.message.message_id, queued.message.message_id];
    const ofDeleted = sent.filter((e) => "message_id" in e.data && deletedIds.includes(e.data.message_id));
    expect(ofDeleted.map((e) => ("content" in e.data ? e.data.content : undefined))).toEqual([
      "",
      "",
      undefined,
      undefined,
    ]);
    // every queued delete is a version above every event of its message, for a consumer's "version above" rule
    const ofQueued = sent.filter(
      (e) => "message_id" in e.data && e.data.message_id === queued.message.message_id,
    );
    expect(ofQueued.map((e) => [e.type, "version" in e.data ? e.data.version : 0])).toEqual([
      ["chat.message.created", 1],
      ["chat.message.edited", 2],
      ["chat.message.deleted", 3],
    ]);
    // nothing else changed: the live message keeps its text, the new delete path is untouched
    const live = sent.find((e) => "message_id" in e.data && e.data.message_id === kept.message.message_id);
    expect(live?.data).toMatchObject({ content: "still here", version: 1 });
  });

  it("is idempotent and its down changes nothing", async () => {
    const before = (await pool.query("SELECT id, event FROM outbox ORDER BY id")).rows;
    await migrateBy(url, "down", 1);
    await migrate(url);
    expect((await pool.query("SELECT id, event FROM outbox ORDER BY id")).rows).toEqual(before);
  });
});
