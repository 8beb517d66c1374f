import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Message, Session } from "../../layers/chat/chat/types.ts";
import { type RunnerFixture, startRunnerFixture } from "../helpers/runner-fixture.ts";

/**
 * A UUID is valid in either case (RFC 9562), and Postgres compares them regardless of case; the API takes an id
 * in upper case as the same id. Before the ids were made canonical at the edge, an edit or delete of an existing
 * message sent with an upper-case id answered 404 on a cached session (the ids are compared as strings in memory),
 * a post's Idempotency-Key scope differed by case, and the erase left that scope's records behind.
 */
let fx: RunnerFixture;
let session: Session;
let token: string;
const upper = (id: string) => id.toUpperCase();

interface Turn {
  message: Message;
  reply: Message;
}

beforeAll(async () => {
  fx = await startRunnerFixture();
  const created = await fx.call<{ session: Session; token: string }>("POST", "/sessions/create", {
    json: {},
  });
  session = created.body.session;
  token = created.body.token;
});
afterAll(async () => {
  await fx?.close();
});

describe("ids in upper case are the same ids", () => {
  it("post, edit, delete and read a session through upper-case ids", async () => {
    const sid = upper(session.session_id);
    const posted = await fx.call<Turn>("POST", "/messages/post", {
      token,
      json: { session_id: sid, content: "hello" },
      headers: { "idempotency-key": "case-test-1" },
    });
    expect(posted.status, posted.text).toBe(201);
    expect(posted.body.message.session_id).toBe(session.session_id);

    const edited = await fx.call<{ message: Message }>("PUT", "/messages/edit", {
      token,
      json: { session_id: sid, message_id: upper(posted.body.message.message_id), content: "hello, edited" },
    });
    expect(edited.status, edited.text).toBe(200);
    expect(edited.body.message.message_id).toBe(posted.body.message.message_id);
    expect(edited.body.message.version).toBe(2);

    const deleted = await fx.call(
      "DELETE",
      `/messages/delete?session_id=${sid}&message_id=${upper(posted.body.reply.message_id)}`,
      { token },
    );
    expect(deleted.status, deleted.text).toBe(200);
    expect(deleted.body).toEqual({ message_id: posted.body.reply.message_id, deleted: true });

    const page = await fx.call<{ messages: Message[] }>("GET", `/sessions/${sid}/messages`, { token });
    expect(page.status).toBe(200);
    expect(page.headers.get("x-cache")).toBe("hit"); // the same cache entries as the lower-case id
    expect(page.body.messages.map((m) => m.content)).toEqual([expect.any(String), "hello, edited"]);
  });

  it("a retry with the id's case changed is the same request, and erasure removes its record", async () => {
    const body = (id: string) => ({ session_id: id, content: "once" });
    const key = { "idempotency-key": "case-test-2" };
    const first = await fx.call<Turn>("POST", "/messages/post", {
      token,
      json: body(session.session_id),
      headers: key,
    });
    const retry = await fx.call<Turn>("POST", "/messages/post", {
      token,
      json: body(upper(session.session_id)),
      headers: key,
    });
    expect(first.status).toBe(201);
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.body.message.message_id).toBe(first.body.message.message_id);

    const erased = await fx.call("DELETE", `/sessions/${upper(session.session_id)}`, { token });
    expect(erased.status, erased.text).toBe(204);
    const left = await fx.db.pool.query(
      "SELECT count(*)::int AS n FROM idempotency_records WHERE scope LIKE 'messages-post:%'",
    );
    expect(left.rows[0].n).toBe(0);
  });
});
