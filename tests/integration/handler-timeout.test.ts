import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Context, MSKEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { getPool } from "#chat/db/pool.ts";
import { stubFunctionEnv } from "../helpers/in-process-function.ts";
import { type HttpLambda, httpEvent, lambdaContext } from "../helpers/lambda-events.ts";
import { resetRuntime } from "../helpers/runner-fixture.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * A function that runs out of time must not answer while its change can still commit. On Lambda a timeout ends
 * the sandbox: its connections close and Postgres rolls the open transaction back, which is what a 5xx tells the
 * client. An answer the handler gives itself just before the timeout (middy's early timeout) is an ordinary return:
 * Lambda freezes the sandbox with the transaction open, holding the session's row, and the change goes on, and
 * may commit, whenever the sandbox runs again.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase(3);
  await stubFunctionEnv(db.url);
});

afterAll(async () => {
  await resetRuntime();
  vi.unstubAllEnvs();
  await db.drop();
});

const load = async (name: string) =>
  ((await import(`../../functions/${name}.ts`)) as { handler: HttpLambda }).handler;

/** The functions' statements still running or transactions still open (the test's own pool names no application). */
async function functionBackendsBusy(): Promise<number> {
  const res = await db.pool.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = 'chat-backend' AND state <> 'idle'`,
  );
  return res.rows[0].n;
}

/**
 * The same, among the connections the function's pool still holds. A function that answers at its request deadline
 * (bug 211) may leave a statement waiting in Postgres, on a connection it closed first: that transaction can never
 * commit (its COMMIT cannot be sent), and Postgres rolls it back once the statement ends.
 */
async function heldBackendsBusy(): Promise<number> {
  const clients = ((await getPool()) as unknown as { _clients: { processID?: number }[] })._clients;
  const res = await db.pool.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1::int[]) AND state <> 'idle'",
    [clients.map((c) => c.processID ?? 0)],
  );
  return res.rows[0].n;
}

async function functionsIdle(): Promise<void> {
  for (let i = 0; i < 100 && (await functionBackendsBusy()) > 0; i++)
    await new Promise((r) => setTimeout(r, 50));
}

/** The handlers' deadline; holdRow lets go after it and within the lock timeout (3 s). */
const DEADLINE_MS = 1000;

/** Another writer holds a row past the handler's deadline; `released` settles once it has let go. */
async function holdRow(table: string, key: string, id: string): Promise<{ released: Promise<void> }> {
  const holder = await db.pool.connect();
  await holder.query("BEGIN");
  await holder.query(`SELECT 1 FROM ${table} WHERE ${key} = $1 FOR UPDATE`, [id]);
  const released = new Promise<void>((resolve) =>
    setTimeout(async () => {
      await holder.query("ROLLBACK");
      holder.release();
      resolve();
    }, 2 * DEADLINE_MS),
  );
  return { released };
}

describe("a function past its time", () => {
  it("answers only once its transaction has ended, and its answer says what happened", async () => {
    const create = await load("sessions-create");
    const created = await create(
      httpEvent("POST", "/sessions/create", { body: {}, headers: { "idempotency-key": randomUUID() } }),
      lambdaContext("sessions-create"),
    );
    expect(created.statusCode).toBe(201);
    const { session, token } = JSON.parse(String(created.body));
    const sid = session.session_id as string;

    const { released } = await holdRow("sessions", "session_id", sid);
    const erase = await load("session-erase");
    const answered = await erase(
      httpEvent("DELETE", `/sessions/${sid}`, { headers: { authorization: `Bearer ${token}` } }),
      lambdaContext("session-erase", DEADLINE_MS),
    ).then(async (res) => ({ status: res.statusCode ?? 0, busy: await heldBackendsBusy() }));
    await released;
    await functionsIdle();
    const left = await db.pool.query("SELECT count(*)::int AS n FROM sessions WHERE session_id = $1", [sid]);

    expect.soft(answered.busy, "the function's transaction was still open when it answered").toBe(0);
    const erased = left.rows[0].n === 0;
    expect({ status: answered.status, erased }).toEqual(
      answered.status === 204 ? { status: 204, erased: true } : { status: answered.status, erased: false },
    );
  });

  it("fails an event batch only if its transaction has ended, and then applied none of it", async () => {
    const batch = JSON.parse(
      readFileSync(new URL("../fixtures/events/events-consumer.json", import.meta.url), "utf8"),
    ) as MSKEvent;
    const ids = Object.values(batch.records)
      .flat()
      .map((r) => JSON.parse(Buffer.from(r.value, "base64").toString("utf8")).id as string);
    const subject = JSON.parse(
      Buffer.from(Object.values(batch.records)[0]?.[0]?.value ?? "", "base64").toString("utf8"),
    ).subject as string;
    await db.pool.query("INSERT INTO session_activity (session_id, last_event_time) VALUES ($1, now())", [
      subject,
    ]);
    const { released } = await holdRow("session_activity", "session_id", subject);
    const { handler } = (await import("../../functions/events-consumer.ts")) as {
      handler: (e: MSKEvent, c: Context) => Promise<unknown>;
    };
    const settled = await handler(batch, lambdaContext("events-consumer", DEADLINE_MS)).then(
      () => true,
      () => false,
    );
    const busy = await functionBackendsBusy();
    await released;
    await functionsIdle();
    const consumed = await db.pool.query(
      "SELECT count(*)::int AS n FROM consumed_events WHERE event_id = ANY($1::uuid[])",
      [ids],
    );

    expect.soft(busy, "the batch's transaction was still open when the invocation ended").toBe(0);
    expect({ succeeded: settled, applied: consumed.rows[0].n }).toEqual({
      succeeded: settled,
      applied: settled ? ids.length : 0,
    });
  });
});
