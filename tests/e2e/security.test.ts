import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { closeRedis } from "../../layers/chat/cache/redis-client.ts";
import { parseConfig, resetConfig } from "../../layers/chat/config.ts";
import { closePool } from "../../layers/chat/db/pool.ts";
import { type Runner, startRunner } from "../../local/server.ts";
import { rowCounts, SHARED_REDIS_URL, testRedis } from "../helpers/chat-fixture.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * Security properties over real HTTP (the local runner, this file's own database, the shared Redis):
 * tokens, their storage, isolation between sessions, security headers and CORS.
 */
vi.hoisted(() => {
  process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
});

const APP_ORIGIN = "https://app.example";
const PER_TOKEN = 30;
let db: TestDatabase;
let runner: Runner;
let redis: Redis;

interface Session {
  sid: string;
  token: string;
  userMsg: string;
  botMsg: string;
}

async function request(
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${runner.url}${path}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}

async function newSession(headers: Record<string, string> = {}): Promise<Session> {
  const created = await request("POST", "/sessions/create", { body: { user_id: "sec" }, headers });
  expect(created.status).toBe(201);
  const token = created.json.token as string;
  const sid = created.json.session.session_id as string;
  const posted = await request("POST", "/messages/post", {
    token,
    body: { session_id: sid, content: "secret words" },
  });
  expect(posted.status).toBe(201);
  return { sid, token, userMsg: posted.json.message.message_id, botMsg: posted.json.reply.message_id };
}

beforeAll(async () => {
  db = await createTestDatabase(5);
  Object.assign(process.env, {
    DATABASE_URL: db.url,
    REDIS_URL: SHARED_REDIS_URL,
    CORS_ORIGINS: APP_ORIGIN,
    RATE_LIMIT_PER_TOKEN: String(PER_TOKEN),
    RATE_LIMIT_PER_IP: "0", // every request here comes from 127.0.0.1
    LOCAL_SCHEDULES: "off",
    // the cache's keys are checked, not timeouts: the product's 50 ms fires when a loaded CI machine stalls us
    REDIS_COMMAND_TIMEOUT_MS: "1000",
  });
  resetConfig();
  runner = await startRunner({ port: 0, schedules: false, log: () => {} });
  redis = testRedis(SHARED_REDIS_URL, { ...parseConfig({}), REDIS_COMMAND_TIMEOUT_MS: 2000 });
  if (redis.status !== "ready") await new Promise((r) => redis.once("ready", r));
});

afterAll(async () => {
  redis?.disconnect();
  await runner?.close();
  await closeRedis();
  await closePool();
  await db?.drop();
});

describe("session tokens", () => {
  it("are 256-bit random values in 43 base64url characters, different every time", async () => {
    const tokens = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const created = await request("POST", "/sessions/create", { body: {} });
      const token = created.json.token as string;
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(token, "base64url")).toHaveLength(32);
      tokens.add(token);
    }
    expect(tokens.size).toBe(20);
  });

  it("are stored only hashed: no table of the database and no Redis key or value holds one", async () => {
    const s = await newSession();
    // also through the idempotent path, whose record has to be able to replay the token
    const replayable = await newSession({ "idempotency-key": "sec-create-key-0001" });
    const replay = await request("POST", "/sessions/create", {
      body: { user_id: "sec" },
      headers: { "idempotency-key": "sec-create-key-0001" },
    });
    expect(replay.status).toBe(201);
    // the replay gives back the same token, so the record holds it in a form only the key opens
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.json.token).toBe(replayable.token);
    await request("GET", `/sessions/${s.sid}/messages`, { token: s.token }); // fills the cache

    // the row holds SHA-256(token) and nothing else derived from it
    const row = await db.pool.query(
      "SELECT encode(token_hash, 'hex') AS h FROM sessions WHERE session_id = $1",
      [s.sid],
    );
    expect(row.rows[0]?.h).toBe(createHash("sha256").update(s.token).digest("hex"));

    const tables = await db.pool.query(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    );
    const dump: string[] = [];
    for (const { table_name } of tables.rows as { table_name: string }[]) {
      const rows = await db.pool.query(`SELECT t::text AS r FROM "${table_name}" t`);
      for (const r of rows.rows as { r: string }[]) dump.push(r.r);
    }
    const everything = dump.join("\n");
    expect(everything).toContain(s.sid); // the dump is real
    for (const token of [s.token, replayable.token, replay.json.token as string]) {
      expect(everything).not.toContain(token);
      // bytea columns print as hex
      expect(everything).not.toContain(Buffer.from(token).toString("hex"));
      expect(everything).not.toContain(Buffer.from(token, "base64url").toString("hex"));
    }

    const keys = await redis.keys(`*${s.sid}*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      const type = await redis.type(key);
      const value =
        type === "string" ? await redis.get(key) : JSON.stringify(await redis.zrange(key, "0", "-1"));
      expect(`${key} ${value}`).not.toContain(s.token);
    }
    const limitKeys = await redis.keys("rl:per-token:*");
    expect(limitKeys.join(" ")).not.toContain(s.token);
  });
});

describe("one session's token never reads, edits or deletes another session's data", () => {
  let a: Session;
  let b: Session;
  beforeAll(async () => {
    a = await newSession();
    b = await newSession();
  });

  const history = async (s: Session) =>
    (await request("GET", `/sessions/${s.sid}/messages`, { token: s.token })).json;

  it("answers 404 on every session-scoped route and changes nothing", async () => {
    const before = { counts: await rowCounts(db.pool), a: await history(a), b: await history(b) };
    const attempts: [string, string, unknown][] = [
      ["GET", `/sessions/${a.sid}`, undefined],
      ["GET", `/sessions/${a.sid}/messages`, undefined],
      ["GET", `/sessions/${a.sid}/suggestions`, undefined],
      ["DELETE", `/sessions/${a.sid}`, undefined],
      ["POST", "/messages/post", { session_id: a.sid, content: "intruder" }],
      ["PUT", "/messages/edit", { session_id: a.sid, message_id: a.userMsg, content: "intruder" }],
      ["PUT", "/messages/edit", { session_id: a.sid, message_id: a.userMsg, content: "x", regenerate: true }],
      ["DELETE", "/messages/delete", { session_id: a.sid, message_id: a.userMsg }],
      ["DELETE", `/messages/delete?session_id=${a.sid}&message_id=${a.botMsg}`, undefined],
    ];
    for (const [method, path, body] of attempts) {
      const res = await request(method, path, { token: b.token, body });
      expect({ method, path, status: res.status, code: res.json?.code }).toEqual({
        method,
        path,
        status: 404,
        code: "session_not_found",
      });
      // nothing of A's leaks into the error
      expect(JSON.stringify(res.json)).not.toContain("secret words");
    }
    expect(await rowCounts(db.pool)).toEqual(before.counts);
    expect(await history(a)).toEqual(before.a);
    expect(await history(b)).toEqual(before.b);
  });

  it("does not let a session reach another session's message through its own session id", async () => {
    const before = await rowCounts(db.pool);
    for (const [method, path, body] of [
      ["PUT", "/messages/edit", { session_id: a.sid, message_id: b.userMsg, content: "cross" }],
      ["DELETE", "/messages/delete", { session_id: a.sid, message_id: b.userMsg }],
    ] as const) {
      const res = await request(method, path, { token: a.token, body });
      expect(res.status).toBe(404);
      expect(res.json.code).toBe("message_not_found");
    }
    expect(await rowCounts(db.pool)).toEqual(before);
    expect((await history(b)).messages.map((m: { content: string }) => m.content)).toContain("secret words");
  });

  it("answers 401 without a token, with a wrong one, and with the token of an erased session", async () => {
    expect((await request("GET", `/sessions/${a.sid}`)).status).toBe(401);
    expect(
      (
        await request("GET", `/sessions/${a.sid}`, {
          token: `${a.token.slice(0, -1)}${a.token.endsWith("A") ? "B" : "A"}`,
        })
      ).status,
    ).toBe(401);
    expect((await request("GET", `/sessions/${a.sid}`, { token: "x".repeat(43) })).status).toBe(401);
    const c = await newSession();
    expect((await request("DELETE", `/sessions/${c.sid}`, { token: c.token })).status).toBe(204);
    const after = await request("GET", `/sessions/${c.sid}`, { token: c.token });
    expect(after.status).toBe(401);
    // A is still there, untouched
    expect((await request("GET", `/sessions/${a.sid}`, { token: a.token })).status).toBe(200);
  });
});

const SECURITY_HEADERS: Record<string, RegExp> = {
  "x-content-type-options": /^nosniff$/,
  "strict-transport-security": /^max-age=\d+/,
  "x-frame-options": /^DENY$/,
  "referrer-policy": /^no-referrer$/,
  "content-security-policy": /^default-src 'none'; frame-ancestors 'none'(;|$)/,
  "cross-origin-resource-policy": /^same-origin$/,
};

describe("security headers and CORS", () => {
  let s: Session;
  beforeAll(async () => {
    s = await newSession();
  });

  it("are on every handler response: 2xx, 204, 4xx of each kind, 429", async () => {
    const fresh = await newSession();
    const responses = {
      created: await request("POST", "/sessions/create", { body: {} }),
      ok: await request("GET", `/sessions/${s.sid}/messages`, { token: s.token }),
      noContent: await request("DELETE", `/sessions/${fresh.sid}`, { token: fresh.token }),
      health: await request("GET", "/health"),
      openapi: await request("GET", "/openapi.json"),
      validation: await request("POST", "/messages/post", { token: s.token, body: { nope: 1 } }),
      malformed: await request("POST", "/messages/post", { token: s.token, body: "{" }),
      unauthorized: await request("GET", `/sessions/${s.sid}`),
      notFound: await request("GET", `/sessions/${crypto.randomUUID()}`, { token: s.token }),
      unsupported: await request("POST", "/messages/post", {
        headers: { "content-type": "text/plain" },
        token: s.token,
      }),
    };
    // 429: one token over its limit
    const hammer = await newSession();
    let limited: Awaited<ReturnType<typeof request>> | undefined;
    for (let i = 0; i < PER_TOKEN + 2 && !limited; i++) {
      const r = await request("GET", `/sessions/${hammer.sid}`, { token: hammer.token });
      if (r.status === 429) limited = r;
    }
    expect(limited?.status).toBe(429);
    for (const [name, res] of Object.entries({
      ...responses,
      limited: limited as NonNullable<typeof limited>,
    })) {
      for (const [header, pattern] of Object.entries(SECURITY_HEADERS)) {
        expect(res.headers.get(header), `${name} (${res.status}): ${header}`).toMatch(pattern);
      }
      expect(res.headers.get("x-powered-by"), name).toBeNull();
      // Chat data, tokens and errors are private; only the OpenAPI document may be cached.
      if (name !== "openapi") expect(res.headers.get("cache-control"), name).toBe("no-store");
      // The headers of an API, not of a page (see functions/http/security-headers.ts): no Permissions-Policy,
      // COEP/COOP or reporting setup in every response.
      for (const header of ["permissions-policy", "cross-origin-embedder-policy", "report-to"])
        expect(res.headers.get(header), `${name}: ${header}`).toBeNull();
    }
    expect(responses.validation.status).toBe(400);
    expect(responses.unauthorized.status).toBe(401);
    expect(responses.notFound.status).toBe(404);
  });

  it("route_not_found / method_not_allowed come from the $default function and carry them too", async () => {
    const notFound = await request("GET", "/nope");
    const notAllowed = await request("PATCH", "/sessions/create");
    expect([notFound.status, notAllowed.status]).toEqual([404, 405]);
    expect([notFound.json.code, notAllowed.json.code]).toEqual(["route_not_found", "method_not_allowed"]);
    for (const res of [notFound, notAllowed]) {
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("cache-control")).toBe("no-store");
    }
  });

  it("CORS: a browser script may read the Location of a created session", async () => {
    const res = await request("POST", "/sessions/create", { body: {}, headers: { origin: APP_ORIGIN } });
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe(`/sessions/${res.json.session.session_id}`);
    const exposed = res.headers
      .get("access-control-expose-headers")
      ?.split(",")
      .map((h) => h.trim().toLowerCase());
    expect(exposed).toContain("location");
  });

  it("CORS: an allowed Origin gets access-control-allow-origin, a foreign one does not", async () => {
    const cases: [string, string, string | undefined][] = [
      ["GET", `/sessions/${s.sid}/messages`, s.token],
      ["GET", `/sessions/${s.sid}`, undefined], // 401
      ["POST", "/sessions/create", undefined],
    ];
    for (const [method, path, token] of cases) {
      const body = method === "POST" ? {} : undefined;
      const allowed = await request(method, path, { token, body, headers: { origin: APP_ORIGIN } });
      expect(allowed.headers.get("access-control-allow-origin"), `${method} ${path}`).toBe(APP_ORIGIN);
      const foreign = await request(method, path, {
        token,
        body,
        headers: { origin: "https://evil.example" },
      });
      expect(foreign.headers.get("access-control-allow-origin"), `${method} ${path}`).toBeNull();
      expect(foreign.status, `${method} ${path}`).toBe(allowed.status);
    }
    // the preflight (answered by the runner, as API Gateway would) follows the same list
    const pre = async (origin: string) =>
      fetch(`${runner.url}/messages/post`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST" },
      });
    expect((await pre(APP_ORIGIN)).headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
    expect((await pre("https://evil.example")).headers.get("access-control-allow-origin")).toBeNull();
  });
});
