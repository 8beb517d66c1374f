import { randomUUID } from "node:crypto";
import type { Message } from "../../../layers/chat/chat/types.ts";
import type { HttpAnswer, RequestOptions } from "../../helpers/load.ts";

/** The slice of the HTTP API the reliability scenarios drive, over a recording `http` function. */
export type Http = <T = unknown>(
  op: string,
  method: string,
  path: string,
  opts?: RequestOptions,
) => Promise<HttpAnswer<T>>;

/** What the tests read of a message: the API's own Message type. */
export type ApiMessage = Message;

export interface SessionRef {
  sessionId: string;
  token: string;
}

interface Created {
  session: { session_id: string; last_seq: number };
  token: string;
  messages: ApiMessage[];
}

/** Creates a session; on 201 the record acknowledges the session id and the welcome message id. */
export async function createSession(http: Http, op = "create"): Promise<SessionRef | undefined> {
  const res = await http<Created>(op, "POST", "/sessions/create", { body: { user_id: "reliability" } });
  if (res.status !== 201) return undefined;
  const sessionId = res.body.session.session_id;
  res.record.ids = [res.body.messages[0]?.message_id ?? ""];
  res.record.meta = { ...res.record.meta, session: sessionId, kind: "create" };
  return { sessionId, token: res.body.token };
}

/** Retries until a session exists (set-up traffic, before faults). */
export async function mustCreateSession(http: Http): Promise<SessionRef> {
  for (let i = 0; i < 50; i++) {
    const s = await createSession(http, "setup-create");
    if (s) return s;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("could not create a session");
}

export interface PostOutcome {
  status: number;
  message?: ApiMessage;
  reply?: ApiMessage;
  tag: string;
}

/** A unique tag in the text lets the reconciliation find a post in Postgres even when its answer was lost. */
export const newTag = (prefix: string) => `${prefix}-${randomUUID().slice(0, 13)}`;

export async function postMessage(
  http: Http,
  s: SessionRef,
  tag: string,
  opts: { idempotencyKey?: string; op?: string } = {},
): Promise<PostOutcome> {
  const res = await http<{ message: ApiMessage; reply: ApiMessage }>(
    opts.op ?? "post",
    "POST",
    "/messages/post",
    {
      body: { session_id: s.sessionId, content: `load message ${tag}` },
      token: s.token,
      headers: opts.idempotencyKey ? { "idempotency-key": opts.idempotencyKey } : {},
      meta: {
        session: s.sessionId,
        tag,
        kind: "post",
        ...(opts.idempotencyKey ? { idempotencyKey: opts.idempotencyKey, token: s.token } : {}),
      },
    },
  );
  if (res.status === 201) {
    res.record.ids = [res.body.message.message_id, res.body.reply.message_id];
    res.record.meta = {
      ...res.record.meta,
      seqs: [res.body.message.seq, res.body.reply.seq],
      replayed: res.headers["idempotent-replayed"] === "true",
    };
    return { status: 201, message: res.body.message, reply: res.body.reply, tag };
  }
  return { status: res.status, tag };
}

export async function editMessage(
  http: Http,
  s: SessionRef,
  messageId: string,
  content: string,
  expectedVersion?: number,
) {
  const res = await http<{ message: ApiMessage }>("edit", "PUT", "/messages/edit", {
    body: {
      session_id: s.sessionId,
      message_id: messageId,
      content,
      ...(expectedVersion === undefined ? {} : { expected_version: expectedVersion }),
    },
    token: s.token,
    meta: { session: s.sessionId, message: messageId, expectedVersion, kind: "edit" },
  });
  if (res.status === 200) res.record.meta = { ...res.record.meta, version: res.body.message.version };
  return res;
}

export async function deleteMessage(http: Http, s: SessionRef, messageId: string) {
  return http("delete", "DELETE", "/messages/delete", {
    body: { session_id: s.sessionId, message_id: messageId },
    token: s.token,
    meta: { session: s.sessionId, message: messageId, kind: "delete" },
  });
}

export async function getSession(http: Http, s: SessionRef) {
  return http<{ last_seq: number; message_count: number }>("get-session", "GET", `/sessions/${s.sessionId}`, {
    token: s.token,
    meta: { session: s.sessionId, kind: "read" },
  });
}

export async function history(http: Http, s: SessionRef, afterSeq = 0, limit = 50) {
  const res = await http<{ messages: ApiMessage[]; next_after_seq: number | null }>(
    "history",
    "GET",
    `/sessions/${s.sessionId}/messages?after_seq=${afterSeq}&limit=${limit}`,
    { token: s.token, meta: { session: s.sessionId, kind: "read" } },
  );
  const cache = res.headers["x-cache"];
  if (typeof cache === "string") res.record.meta = { ...res.record.meta, cache };
  return res;
}

/** Share of history reads in the records that the cache answered. */
export function cacheHitRatio(records: { op: string; status: number; meta?: Record<string, unknown> }[]) {
  const reads = records.filter((r) => r.op === "history" && r.status === 200);
  return reads.length === 0 ? 0 : reads.filter((r) => r.meta?.cache === "hit").length / reads.length;
}
