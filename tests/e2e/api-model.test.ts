import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatModel, type Expected, type ModelSession, noneMatches } from "../helpers/chat-model.ts";
import { type PrivateRedis, startPrivateRedis } from "../helpers/private-redis.ts";
import { type ApiResponse, type RunnerFixture, startRunnerFixture } from "../helpers/runner-fixture.ts";

/**
 * Model-based test of the API's semantics: random sequences of creates, posts (with and without Idempotency-Key),
 * edits (If-Match, expected_version, regenerate), deletes, history pages (cursors, limits, If-None-Match), session
 * and suggestion reads, erases and foreign tokens, sent one at a time to the local runner over HTTP on real Postgres
 * and Redis; every answer (status, problem code, body, ETag, replay header) compared with tests/helpers/chat-model.ts.
 * Run with a warm cache, a cold one (Redis flushed before every request), one of a session's entries deleted before
 * a request, no Redis, and long histories. Small limits (a session full at 21 messages, a 3-message, 100-character
 * bot context, a 4 KiB history entry) bring the edges into short runs. A failure prints its seed:
 * API_MODEL_SEED=<seed> replays it; API_MODEL_STEPS=<n> runs longer; API_MODEL_STATS=1 prints what a run reached.
 */
const STEPS = Number(process.env.API_MODEL_STEPS ?? 120);
const BASE_SEED = Number(process.env.API_MODEL_SEED ?? Math.floor(Math.random() * 2 ** 31));
const LIMITS = { maxSessionMessages: 21, contextMessages: 3, contextChars: 100 };
/** Long messages under the default bounds: a history past the 32 KB the cache reads of either end. */
const LONG_LIMITS = { maxSessionMessages: 41, contextMessages: 20, contextChars: 8000 };
const SMALL_ENV = {
  MAX_SESSION_MESSAGES: String(LIMITS.maxSessionMessages),
  RESPONDER_CONTEXT_MESSAGES: String(LIMITS.contextMessages),
  RESPONDER_CONTEXT_CHARS: String(LIMITS.contextChars),
  CACHE_HISTORY_MAX_BYTES: "4096",
};
const LONG_ENV = {
  MAX_SESSION_MESSAGES: String(LONG_LIMITS.maxSessionMessages),
  RESPONDER_CONTEXT_MESSAGES: String(LONG_LIMITS.contextMessages),
  RESPONDER_CONTEXT_CHARS: String(LONG_LIMITS.contextChars),
  CACHE_HISTORY_MAX_BYTES: String(1024 * 1024),
};

/** mulberry32: a small seeded PRNG, so a failing sequence can be run again. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T;
  return { next, int, pick, chance: (p: number) => next() < p };
}
type Rng = ReturnType<typeof prng>;

const CONTENTS = [
  "hello",
  "help",
  "What was my first message?",
  "What was my last message?",
  "How many messages so far?",
  "Summarize our conversation",
  "Tell me more",
  "What can you do?",
  "Tell me a fun fact",
  "is this thing on?",
  "ok",
  "émoji 😀 and ✓ marks",
  'two\nlines, a "quote", a \\ and a \u2028 separator',
  "「日本語」のメッセージ",
  "a longer line of text that the bot's small context cannot hold together with much else ".repeat(3),
];
// 1,500 to 6,000 characters, some of them escaped in JSON (six bytes for a control character)
const LONG_TEXTS = [
  "x".repeat(1500),
  `${"long line of words ".repeat(200)}?`,
  "tab\tand\u0001control ".repeat(300),
  "ü😀".repeat(2000),
];
const LONG_CONTENTS = [...CONTENTS.slice(0, 8), ...LONG_TEXTS, ...LONG_TEXTS];
let contents = CONTENTS;
// create keys are scoped to the caller's address and outlive a sequence: each sequence takes its own
const createKeys = (seed: number) => [1, 2, 3].map((n) => `create-key-${seed}-${n}`);
const CREATE_BODIES = [{}, { user_id: "ada" }, { user_id: "grace", metadata: { plan: "pro", n: 1 } }];
const POST_KEYS = ["k1", "k2", "k3"];

type Mode = "warm" | "cold" | "evicted" | "none";

let fx: RunnerFixture;
let redis: PrivateRedis;
let flusher: Redis;

beforeAll(async () => {
  fx = await startRunnerFixture({ env: SMALL_ENV });
  redis = await startPrivateRedis();
  flusher = new Redis(redis.url, { lazyConnect: true });
  await flusher.connect();
}, 60_000);
afterAll(async () => {
  flusher?.disconnect();
  await fx?.close();
  await redis?.stop();
});

/** One sequence of STEPS random requests, each answer compared with the model's. */
async function runSequence(mode: Mode, seed: number, long = false) {
  contents = long ? LONG_CONTENTS : CONTENTS;
  const rng = prng(seed);
  caseRng = prng(seed ^ 0x5bd1e995);
  const model = new ChatModel(long ? LONG_LIMITS : LIMITS, createKeys(seed));
  const log: string[] = [];
  const fail = (step: number, err: unknown): never => {
    const detail = err instanceof Error ? err.message : String(err);
    throw new Error(
      `API model (${mode}) diverged at step ${step}; replay with API_MODEL_SEED=${BASE_SEED} (sequence seed ${seed})\n` +
        `last requests:\n  ${log.slice(-12).join("\n  ")}\n${detail}`,
    );
  };
  for (let step = 0; step < STEPS; step++) {
    if (mode === "cold") await flusher.flushall();
    if (mode === "evicted") await evictOne(model, rng);
    try {
      await randomStep(model, rng, mode, log);
    } catch (err) {
      fail(step, err);
    }
  }
  // every live session, read back whole at the end
  for (const s of model.sessions.filter((x) => !x.erased)) {
    try {
      await readHistory(model, s, 0, 200, undefined, mode, log);
    } catch (err) {
      fail(STEPS, err);
    }
  }
}

/** One of a session's two cache entries gone (its TTL, an eviction), the other left: each expires on its own. */
async function evictOne(model: ChatModel, rng: Rng) {
  const s = model.sessions.length > 0 && rng.chance(0.4) ? rng.pick(model.sessions) : undefined;
  if (s) await flusher.del(`chat:{${s.session_id}}:${rng.pick(["s", "h"])}`);
}

async function randomStep(model: ChatModel, rng: Rng, mode: Mode, log: string[]) {
  const live = model.sessions.filter((s) => !s.erased);
  if (live.length < 2 || rng.chance(0.06)) return create(model, rng, log);
  const s = rng.chance(0.9) ? rng.pick(live) : rng.pick(model.sessions);
  const r = rng.next();
  if (r < 0.3) return post(model, rng, s, log);
  if (r < 0.5) return edit(model, rng, s, log);
  if (r < 0.6) return del(model, rng, s, log);
  if (r < 0.75) {
    const after = rng.chance(0.5) ? 0 : rng.int(0, s.last_seq + 2);
    const limit = rng.chance(0.3) ? undefined : rng.int(1, 6);
    const tag = s.etag ?? 'W/"1"';
    const ifNoneMatch = rng.chance(0.4)
      ? rng.pick([tag, tag, tag.slice(2), "*", `W/"1", ${tag}`])
      : undefined;
    return readHistory(model, s, after, limit, ifNoneMatch, mode, log);
  }
  if (r < 0.83) return readSession(model, s, log);
  if (r < 0.89) return readSuggestions(model, s, log);
  if (r < 0.92) return erase(model, s, log);
  // another session's token, or one never issued
  const other = rng.chance(0.5) ? rng.pick(model.sessions).token : "not-a-token";
  log.push(`GET session ${short(s)} with a foreign token`);
  const res = await fx.call("GET", `/sessions/${anyCase(s.session_id)}`, { token: other });
  const expected = model.authorize(s, other) ?? { status: 200 };
  if (expected.status === 200) return; // its own token after all
  expectAnswer(res, expected);
}

const short = (s: ModelSession) => s.session_id.slice(0, 8);

/** An If-Match for a message at `version`: its tag, a stale one, a list, a bare number, a weak tag or `*`. */
function ifMatch(rng: Rng, version: number): string {
  const other = version + rng.pick([-1, 1]);
  return rng.pick([
    `"${version}"`,
    `"${version}"`,
    `"${other}"`,
    `"${other}", "${version}"`,
    `"${other}", W/"${version}"`,
    String(version),
    `W/"${version}"`,
    "*",
  ]);
}

/** Ids are taken in either case (README): some requests send them in upper case. */
let caseRng: Rng = prng(0);
const anyCase = (id: string) => (caseRng.chance(0.15) ? id.toUpperCase() : id);

async function create(model: ChatModel, rng: Rng, log: string[]) {
  const key = rng.chance(0.3) ? rng.pick(model.createKeyNames) : undefined;
  const sent = rng.pick(CREATE_BODIES);
  const body = JSON.stringify(sent);
  log.push(`POST /sessions/create ${body} key=${key}`);
  const res = await fx.call<{
    session: { session_id: string; created_at: string };
    token: string;
    messages: { message_id: string }[];
  }>("POST", "/sessions/create", {
    json: sent,
    headers: key ? { "idempotency-key": key } : {},
  });
  const replay = model.createReplay(key, body);
  if (replay) return expectAnswer(res, replay);
  expect(res.status, res.text).toBe(201);
  tally(res, "create");
  expect(res.headers.get("idempotent-replayed")).toBeNull();
  expect(res.headers.get("location")).toBe(`/sessions/${res.body.session.session_id}`);
  expect(res.body).toEqual(model.learnCreate(key, sent, body, res.body));
}

async function post(model: ChatModel, rng: Rng, s: ModelSession, log: string[]) {
  const key = rng.chance(0.4) ? rng.pick(POST_KEYS) : undefined;
  const earlier = key === undefined ? undefined : s.postKeys.get(key);
  const content = earlier && rng.chance(0.7) ? earlier.content : rng.pick(contents);
  log.push(`POST /messages/post ${short(s)} ${JSON.stringify(content.slice(0, 30))} key=${key}`);
  const res = await fx.call<{
    message: { message_id: string; created_at: string };
    reply: { message_id: string };
  }>("POST", "/messages/post", {
    token: s.token,
    json: { session_id: anyCase(s.session_id), content },
    headers: key ? { "idempotency-key": key } : {},
  });
  const expected = model.post(s, s.token, content, key);
  if (expected) return expectAnswer(res, expected);
  expect(res.status, res.text).toBe(201);
  tally(res, "post");
  expect(res.headers.get("idempotent-replayed")).toBeNull();
  expectLater(res.body.message.created_at, s);
  expect(res.body).toEqual(model.learnPost(s, content, key, res.body));
}

async function edit(model: ChatModel, rng: Rng, s: ModelSession, log: string[]) {
  const live = model.live(s);
  const users = live.filter((m) => m.role === "user");
  const r = rng.next();
  const target =
    r < 0.6 && users.length > 0
      ? rng.chance(0.5)
        ? (users.at(-1) as (typeof users)[number])
        : rng.pick(users)
      : r < 0.75
        ? rng.pick(s.messages)
        : r < 0.85
          ? rng.chance(0.5)
            ? { message_id: randomUUID(), version: 1 }
            : rng.pick(rng.pick(model.sessions).messages)
          : (rng.pick(live) ?? rng.pick(s.messages));
  const version = target.version;
  const p = rng.next();
  const headers: Record<string, string> = {};
  let expectedVersion: number | undefined;
  if (p < 0.4) headers["if-match"] = ifMatch(rng, version);
  else if (p < 0.5) expectedVersion = version;
  else if (p < 0.6) expectedVersion = Math.max(1, version + rng.pick([-1, 1]));
  const regenerate = rng.chance(0.5) ? true : rng.chance(0.2) ? false : undefined;
  const content = rng.pick(contents);
  const body = {
    session_id: anyCase(s.session_id),
    message_id: anyCase(target.message_id),
    content,
    ...(expectedVersion === undefined ? {} : { expected_version: expectedVersion }),
    ...(regenerate === undefined ? {} : { regenerate }),
  };
  log.push(`PUT /messages/edit ${short(s)} ${JSON.stringify({ ...body, session_id: undefined, headers })}`);
  const res = await fx.call<{
    message: { edited_at: string; version: number };
    reply?: { message_id: string };
  }>("PUT", "/messages/edit", { token: s.token, json: body, headers });
  const e = {
    messageId: target.message_id,
    content,
    ...(headers["if-match"] === undefined ? {} : { ifMatch: headers["if-match"] }),
    ...(expectedVersion === undefined ? {} : { expected: expectedVersion }),
    ...(regenerate === undefined ? {} : { regenerate }),
  };
  const expected = model.edit(s, s.token, e);
  if (expected) return expectAnswer(res, expected);
  expect(res.status, res.text).toBe(200);
  tally(res, regenerate ? "edit regenerate" : "edit");
  expectLater(res.body.message.edited_at, s);
  expect(res.body).toEqual(model.learnEdit(s, e, res.body));
  expect(res.headers.get("etag")).toBe(`"${res.body.message.version}"`);
}

async function del(model: ChatModel, rng: Rng, s: ModelSession, log: string[]) {
  const live = model.live(s);
  const r = rng.next();
  const target =
    r < 0.7 && live.length > 0
      ? rng.pick(live)
      : r < 0.9
        ? rng.pick(s.messages)
        : rng.chance(0.5)
          ? { message_id: randomUUID(), version: 1 }
          : rng.pick(rng.pick(model.sessions).messages);
  const p = rng.next();
  const headers: Record<string, string> = {};
  if (p < 0.3) headers["if-match"] = ifMatch(rng, target.version);
  const inQuery = rng.chance(0.5);
  log.push(`DELETE /messages/delete ${short(s)} ${target.message_id} ${JSON.stringify(headers)}`);
  const ids = { session_id: anyCase(s.session_id), message_id: anyCase(target.message_id) };
  const res = inQuery
    ? await fx.call("DELETE", `/messages/delete?${new URLSearchParams(ids)}`, { token: s.token, headers })
    : await fx.call("DELETE", "/messages/delete", { token: s.token, json: ids, headers });
  expectAnswer(res, model.delete(s, s.token, target.message_id, headers["if-match"]));
}

async function readHistory(
  model: ChatModel,
  s: ModelSession,
  afterSeq: number,
  limit: number | undefined,
  ifNoneMatch: string | undefined,
  mode: Mode,
  log: string[],
) {
  const query = `after_seq=${afterSeq}${limit === undefined ? "" : `&limit=${limit}`}`;
  log.push(`GET history ${short(s)} ${query} if-none-match=${ifNoneMatch}`);
  const res = await fx.call(`GET`, `/sessions/${anyCase(s.session_id)}/messages?${query}`, {
    token: s.token,
    headers: ifNoneMatch ? { "if-none-match": ifNoneMatch } : {},
  });
  const refused = model.authorize(s, s.token);
  if (refused) return expectAnswer(res, refused);
  const etag = res.headers.get("etag");
  expect(etag, "a page's ETag").toMatch(/^W\/"\d+"$/);
  if (s.etagMoved) {
    expect(s.etags.has(etag as string), `ETag ${etag} came back after a change`).toBe(false);
  } else {
    expect(etag, "the ETag moved without a change").toBe(s.etag);
  }
  s.etag = etag;
  s.etags.add(etag as string);
  s.etagMoved = false;
  if (noneMatches(ifNoneMatch, etag as string)) {
    expect(res.status, res.text).toBe(304);
    tally(res, "history");
    expect(res.text).toBe("");
    return;
  }
  expect(res.status, res.text).toBe(200);
  expect(res.body).toEqual(model.page(s, afterSeq, limit ?? 50));
  const xCache = res.headers.get("x-cache");
  tally(res, `history ${mode} x-cache ${xCache}`);
  if (mode === "none") expect(xCache).toBe("miss");
  else expect(["hit", "miss"]).toContain(xCache);
}

async function readSession(model: ChatModel, s: ModelSession, log: string[]) {
  log.push(`GET session ${short(s)}`);
  const res = await fx.call<{ updated_at: string }>("GET", `/sessions/${anyCase(s.session_id)}`, {
    token: s.token,
  });
  const refused = model.authorize(s, s.token);
  if (refused) return expectAnswer(res, refused);
  expect(res.status, res.text).toBe(200);
  if (s.updatedMoved) {
    expectLater(res.body.updated_at, s);
    s.updated_at = res.body.updated_at;
    s.updatedMoved = false;
  }
  expect(res.body).toEqual(model.sessionBody(s));
}

async function readSuggestions(model: ChatModel, s: ModelSession, log: string[]) {
  log.push(`GET suggestions ${short(s)}`);
  const res = await fx.call("GET", `/sessions/${anyCase(s.session_id)}/suggestions`, { token: s.token });
  const refused = model.authorize(s, s.token);
  if (refused) return expectAnswer(res, refused);
  expect(res.status, res.text).toBe(200);
  expect(res.body).toEqual({ suggestions: s.suggestions });
}

async function erase(model: ChatModel, s: ModelSession, log: string[]) {
  log.push(`DELETE session ${short(s)}`);
  const res = await fx.call("DELETE", `/sessions/${anyCase(s.session_id)}`, { token: s.token });
  expectAnswer(res, model.erase(s, s.token));
}

/** API_MODEL_STATS=1 prints how often each outcome came up, to see what a sequence reached. */
const outcomes = new Map<string, number>();
function tally(res: ApiResponse, what: string) {
  const key = `${res.status} ${what}`;
  outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
}
afterAll(() => {
  if (process.env.API_MODEL_STATS) console.log([...outcomes].sort().join("\n"));
});

/** A change's time: after every one before it (README: each change is stamped after the one before). */
function expectLater(at: string, s: ModelSession) {
  expect(Date.parse(at), `${at} after ${s.updated_at}`).toBeGreaterThan(Date.parse(s.updated_at));
}

function expectAnswer(res: ApiResponse, expected: Expected) {
  tally(res, "code" in expected ? expected.code : "");
  expect(res.status, res.text).toBe(expected.status);
  expect(res.headers.get("cache-control")).toBe("no-store");
  if ("code" in expected) {
    expect(res.contentType).toBe("application/problem+json");
    expect((res.body as { code: string }).code, res.text).toBe(expected.code);
    if (expected.status === 401) expect(res.headers.get("www-authenticate")).toBe('Bearer realm="chat"');
    return;
  }
  if (expected.body !== undefined) expect(res.body).toEqual(expected.body);
  else expect(res.text).toBe("");
  for (const [name, value] of Object.entries(expected.headers ?? {}))
    expect(res.headers.get(name), name).toBe(value);
}

describe("the API against its reference model (random sequences, one request at a time)", () => {
  it("agrees with the model with a warm cache", async () => {
    await fx.reconfigure({ ...SMALL_ENV, REDIS_URL: redis.url });
    await runSequence("warm", BASE_SEED);
  }, 120_000);

  it("agrees with the model with a cold cache (Redis flushed before every request)", async () => {
    await fx.reconfigure({ ...SMALL_ENV, REDIS_URL: redis.url });
    await runSequence("cold", BASE_SEED + 1);
  }, 120_000);

  it("agrees with the model when one of a session's cache entries is gone before a request", async () => {
    await fx.reconfigure({ ...SMALL_ENV, REDIS_URL: redis.url });
    await runSequence("evicted", BASE_SEED + 4);
  }, 120_000);

  it("agrees with the model without Redis", async () => {
    await fx.reconfigure({ ...SMALL_ENV, REDIS_URL: "" });
    await runSequence("none", BASE_SEED + 2);
  }, 120_000);

  it("agrees with the model with histories past what the cache reads of either end, and cache entries evicted", async () => {
    await fx.reconfigure({ ...LONG_ENV, REDIS_URL: redis.url });
    await runSequence("evicted", BASE_SEED + 3, true);
  }, 120_000);
});

describe("what the model found, one request at a time", () => {
  /** A session filled to MAX_SESSION_MESSAGES (21) by posts, the last of them sent with `key`. */
  async function fullSession(key: string, content: string) {
    await fx.reconfigure({ ...SMALL_ENV, REDIS_URL: redis.url });
    const created = await fx.call<{ session: { session_id: string }; token: string }>(
      "POST",
      "/sessions/create",
      {
        json: {},
      },
    );
    const s = { session_id: created.body.session.session_id, token: created.body.token };
    const send = (text: string, k?: string) =>
      fx.call("POST", "/messages/post", {
        token: s.token,
        json: { session_id: s.session_id, content: text },
        headers: k ? { "idempotency-key": k } : {},
      });
    for (let i = 0; i < 9; i++) expect((await send(`filler ${i}`)).status).toBe(201);
    const last = await send(content, key);
    expect(last.status, last.text).toBe(201);
    return { s, last, send };
  }

  it("the retry of the post that filled its session replays it, not 409 session_full", async () => {
    const { last, send } = await fullSession("the-last-one", "one more");
    const retry = await send("one more", "the-last-one");
    expect(retry.status, retry.text).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.text).toBe(last.text);
    // with another body the key is reused (422); a new key's post is refused as full, and gives its key back
    const reused = await send("something else", "the-last-one");
    expect(reused.status, reused.text).toBe(422);
    for (let i = 0; i < 2; i++) {
      const refused = await send("one more", "a-new-key");
      expect((refused.body as { code: string }).code, refused.text).toBe("session_full");
    }
  });

  it("the retry of a filling post whose message was deleted since is replay_withdrawn, not session_full", async () => {
    const { s, last, send } = await fullSession("withdrawn", "to be deleted");
    const id = (last.body as { message: { message_id: string } }).message.message_id;
    const del = await fx.call("DELETE", "/messages/delete", {
      token: s.token,
      json: { session_id: s.session_id, message_id: id },
    });
    expect(del.status, del.text).toBe(200);
    const retry = await send("to be deleted", "withdrawn");
    expect(retry.status, retry.text).toBe(409);
    expect((retry.body as { code: string }).code).toBe("replay_withdrawn");
  });
});
