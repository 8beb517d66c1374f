import { randomUUID } from "node:crypto";
import { HttpClient, type LoadRecord, type StepContext } from "../../helpers/load.ts";
import {
  createSession,
  deleteMessage,
  editMessage,
  getSession,
  history,
  mustCreateSession,
  newTag,
  postMessage,
  type SessionRef,
} from "./chat-api.ts";

/**
 * The fault scenarios' workload: each worker owns one session at a time (so a 409 session_busy is never
 * expected) and loops post → read its session → read its last page → read a peer's last page. With a single
 * writer per session, a read sent after a post was acknowledged that shows less than that post is stale; the
 * peer reads put concurrent cache fills next to every writer, the race a cache invalidation must survive.
 */
export interface WriterState {
  session: SessionRef;
  /** Highest seq this worker's session is known to have reached (acknowledged or observed). */
  lastSeq: number;
  /** Posts sent to the current session. */
  turns: number;
  prefix: string;
  /** Idempotency-Key per post, when the scenario wants them. */
  idempotent: boolean;
  /** Every worker's state (shared), for the peer reads. */
  peers: WriterState[];
  /** User messages of the current session that this worker posted and has not deleted (soak). */
  mine: string[];
  /** Messages of the current session this worker deleted (acknowledged): never to be read again. */
  deleted: Set<string>;
  staleReads: number;
  staleDetails: string[];
}

export function writerInit(prefix: string, opts: { idempotent?: boolean } = {}) {
  const peers: WriterState[] = [];
  return async (worker: number, client: HttpClient): Promise<WriterState> => {
    const session = await mustCreateSession((op, method, path, o) => client.request(op, method, path, o));
    const state: WriterState = {
      session,
      lastSeq: 1,
      turns: 0,
      prefix: `${prefix}-w${worker}`,
      idempotent: opts.idempotent ?? false,
      peers,
      mine: [],
      deleted: new Set(),
      staleReads: 0,
      staleDetails: [],
    };
    peers.push(state);
    return state;
  };
}

function stale(state: WriterState, record: LoadRecord, what: string) {
  state.staleReads++;
  record.meta = { ...record.meta, stale: true };
  if (state.staleDetails.length < 20) state.staleDetails.push(`${String(record.meta?.session)} ${what}`);
}

/**
 * Turns per session before a worker moves to a new one: a closed loop would otherwise grow sessions to
 * thousands of messages in seconds, and measure JSON over 500-message histories instead of the fault.
 */
export const TURNS_PER_SESSION = 40;

async function rotate(ctx: StepContext<WriterState>): Promise<boolean> {
  const st = ctx.state;
  if (st.turns < TURNS_PER_SESSION) return true;
  const next = await createSession(ctx.http);
  if (!next) return false;
  st.session = next;
  st.lastSeq = 1;
  st.turns = 0;
  st.mine = [];
  st.deleted = new Set();
  return true;
}

async function post(ctx: StepContext<WriterState>): Promise<number> {
  const st = ctx.state;
  st.turns++;
  const posted = await postMessage(ctx.http, st.session, newTag(st.prefix), {
    ...(st.idempotent ? { idempotencyKey: randomUUID() } : {}),
  });
  if (posted.message && posted.reply) {
    st.lastSeq = Math.max(st.lastSeq, posted.reply.seq);
    st.mine.push(posted.message.message_id);
  }
  return posted.status;
}

/** Reads a session's last page and checks it against what was acknowledged before the read was sent. */
async function checkedRead(ctx: StepContext<WriterState>, owner: WriterState): Promise<void> {
  const session = owner.session;
  const expected = owner.lastSeq;
  const deleted = [...owner.deleted];
  const h = await history(ctx.http, session, Math.max(0, expected - 2), 50);
  if (h.status !== 200) return;
  const seqs = new Set(h.body.messages.map((m) => m.seq));
  if (expected > 1 && !(seqs.has(expected) && seqs.has(expected - 1)))
    stale(
      ctx.state,
      h.record,
      `history after ${expected - 2} lacks seq ${expected - 1}/${expected} (x-cache ${String(h.record.meta?.cache)}, ` +
        `got ${[...seqs].join(",") || "none"}, ${owner === ctx.state ? "own" : "peer"} read)`,
    );
  const ids = new Set(h.body.messages.map((m) => m.message_id));
  const back = deleted.filter((id) => ids.has(id));
  if (back.length) stale(ctx.state, h.record, `deleted message ${back[0]} read back`);
}

async function checkedSession(ctx: StepContext<WriterState>): Promise<void> {
  const st = ctx.state;
  const expected = st.lastSeq;
  const s = await getSession(ctx.http, st.session);
  if (s.status !== 200) return;
  if (s.body.last_seq < expected) stale(st, s.record, `session last_seq ${s.body.last_seq} < ${expected}`);
  st.lastSeq = Math.max(st.lastSeq, s.body.last_seq);
}

function peerOf(st: WriterState): WriterState | undefined {
  if (st.peers.length < 2) return undefined;
  const others = st.peers.filter((p) => p !== st);
  return others[Math.floor(Math.random() * others.length)];
}

/** With no server to answer (refused connections), a closed loop would spin: pause a little instead. */
const pause = () => new Promise<void>((r) => setTimeout(r, 100));

export async function writerStep(ctx: StepContext<WriterState>): Promise<void> {
  if (!(await rotate(ctx))) return pause();
  const status = await post(ctx);
  if (status === 0) await pause();
  if (ctx.stopping() || status === 0) return;
  await checkedSession(ctx);
  await checkedRead(ctx, ctx.state);
  const peer = peerOf(ctx.state);
  if (peer) await checkedRead(ctx, peer);
}

/** The soak's mix: the writer loop, plus edits and deletes of the worker's own messages. */
export async function mixedStep(ctx: StepContext<WriterState>): Promise<void> {
  const st = ctx.state;
  if (!(await rotate(ctx))) return pause();
  const roll = ctx.iteration % 10;
  if (roll < 6 || st.mine.length < 2) {
    await post(ctx);
  } else if (roll < 8) {
    const id = st.mine[st.mine.length - 1] as string;
    await editMessage(ctx.http, st.session, id, `edited ${newTag(st.prefix)}`);
  } else {
    const id = st.mine.shift() as string;
    const res = await deleteMessage(ctx.http, st.session, id);
    if (res.status === 200) st.deleted.add(id);
  }
  if (ctx.stopping()) return;
  await checkedRead(ctx, st);
  if (roll === 0) await checkedSession(ctx);
  const peer = peerOf(st);
  if (peer && roll % 2 === 1) await checkedRead(ctx, peer);
}

export function staleFigures(states: WriterState[]) {
  return {
    staleReads: states.reduce((n, s) => n + s.staleReads, 0),
    details: states.flatMap((s) => s.staleDetails),
  };
}

/**
 * Retries each post that got no 201 once, with its Idempotency-Key and body, `concurrency` at a time, as a
 * client told "503, Retry-After" (or whose connection broke) would. Returns the retries' records.
 */
export async function retryFailedPosts(
  url: string,
  records: LoadRecord[],
  concurrency: number,
): Promise<LoadRecord[]> {
  const failed = records.filter((r) => r.op === "post" && r.status !== 201 && r.meta?.idempotencyKey);
  const out: LoadRecord[] = [];
  const client = new HttpClient(url, { maxSockets: concurrency, sink: (r) => out.push(r) });
  const queue = [...failed];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let r = queue.shift(); r; r = queue.shift()) {
        const meta = r.meta as { session: string; token: string; tag: string; idempotencyKey: string };
        await postMessage(
          (op, method, path, opts) => client.request(op, method, path, opts),
          { sessionId: meta.session, token: meta.token },
          meta.tag,
          { idempotencyKey: meta.idempotencyKey, op: "retry-post" },
        );
      }
    }),
  );
  client.close();
  return out;
}
