import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { statusOf } from "../../functions/http/problem.ts";
import { httpFunctions } from "../../functions/manifest.ts";
import { closeRedis } from "../../layers/chat/cache/redis-client.ts";
import { isBlank } from "../../layers/chat/chat/content-rules.ts";
import { resetConfig } from "../../layers/chat/config.ts";
import { closePool } from "../../layers/chat/db/pool.ts";
import { buildHttpApiEvent, newApiGatewayRequestId } from "../../local/api-gateway-event.ts";
import { type Runner, startRunner } from "../../local/server.ts";
import { rowCounts, SHARED_REDIS_URL } from "../helpers/chat-fixture.ts";
import { type HttpLambda, lambdaContext } from "../helpers/lambda-events.ts";
import { documentedProblemCodes } from "../helpers/openapi-validator.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * Property tests of the HTTP contract against hostile input: never a 5xx, every 4xx a problem+json
 * document with a code docs/openapi.json lists for the operation at that status, and no 4xx changes anything (row counts of sessions, messages, outbox, idempotency records,
 * message versions and tombstones, before vs after each request). Most requests go straight to the
 * handlers (volume); a few thousand go over real HTTP through the local runner (methods, paths, framing).
 * FUZZ_RUNS scales the run (default 1); FUZZ_SEED replays one.
 */
vi.hoisted(() => {
  process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
});

const SCALE = Number(process.env.FUZZ_RUNS ?? "1");
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const DIRECT_RUNS = Math.round(7600 * SCALE);
const HTTP_RUNS = Math.round(2300 * SCALE);
const ROUND_TRIP_RUNS = Math.round(150 * SCALE);
const sent = { direct: 0, http: 0, roundTrip: 0 };
/** Answers by status, per test: shows what the generators reach (printed at the end). */
const statuses: Record<"direct" | "http", Record<number, number>> = { direct: {}, http: {} };
const tally = (where: "direct" | "http", status: number) => {
  statuses[where][status] = (statuses[where][status] ?? 0) + 1;
};

let db: TestDatabase;
let runner: Runner;
const handlers = new Map<string, HttpLambda>();

// ---- the live state the generated requests refer to (by placeholder, resolved when sent) ----
interface Seed {
  sid: string;
  token: string;
  userMsg: string;
  botMsg: string;
}
const seeds: Record<"A" | "B", Seed> = {} as Record<"A" | "B", Seed>;
const PLACEHOLDER = /⟦(A|B)\.(sid|token|userMsg|botMsg)⟧/g;
const resolve = (s: string) => s.replace(PLACEHOLDER, (_, who: "A" | "B", f: keyof Seed) => seeds[who][f]);

async function createSeed(): Promise<Seed> {
  const res = await fetch(`${runner.url}/sessions/create`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_id: "fuzz", metadata: { k: "v" } }),
  });
  expect(res.status).toBe(201);
  const created = (await res.json()) as { token: string; session: { session_id: string } };
  const posted = await fetch(`${runner.url}/messages/post`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${created.token}` },
    body: JSON.stringify({ session_id: created.session.session_id, content: "seed message" }),
  });
  expect(posted.status).toBe(201);
  const turn = (await posted.json()) as { message: { message_id: string }; reply: { message_id: string } };
  return {
    sid: created.session.session_id,
    token: created.token,
    userMsg: turn.message.message_id,
    botMsg: turn.reply.message_id,
  };
}

beforeAll(async () => {
  db = await createTestDatabase(10);
  Object.assign(process.env, {
    DATABASE_URL: db.url,
    REDIS_URL: SHARED_REDIS_URL,
    // this file sends thousands of requests from one address: limits off
    RATE_LIMIT_PER_TOKEN: "0",
    RATE_LIMIT_PER_IP: "0",
    LOCAL_SCHEDULES: "off",
    DB_POOL_MAX: "5",
  });
  resetConfig();
  runner = await startRunner({ port: 0, schedules: false, log: () => {} });
  for (const f of httpFunctions) {
    const mod = (await import(`../../functions/${f.handler}.ts`)) as { handler: HttpLambda };
    handlers.set(f.name, mod.handler);
  }
  seeds.A = await createSeed();
  seeds.B = await createSeed();
});

afterAll(async () => {
  await runner?.close();
  await closeRedis();
  await closePool();
  await db?.drop();
  console.info(`fuzz-contract: statuses ${JSON.stringify(statuses)}`);
  console.info(
    `fuzz-contract: ${sent.direct} direct handler calls, ${sent.http} HTTP requests, ${sent.roundTrip} round trips (${sent.direct + sent.http + sent.roundTrip} requests)`,
  );
});

// ---- generators ----
const INJECTIONS = [
  "' OR '1'='1",
  "'; DROP TABLE sessions; --",
  "1; SELECT pg_sleep(10)--",
  "\\'; TRUNCATE messages; --",
  "$1",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a template injection, on purpose
  "${7*7}",
  "{{7*7}}",
  "{{constructor.constructor('return process')()}}",
  "<%= 7*7 %>",
  "#{7*7}",
  "<script>alert(1)</script>",
  "../../../../etc/passwd",
  "%00",
  "%2e%2e%2f",
  "$(id)",
  "`id`",
  '{"$gt":""}',
  "__proto__",
  "constructor",
  "prototype",
  "NaN",
  "Infinity",
  "-0",
  "1e309",
  "0x1F",
  "null",
  "undefined",
  "true",
  "[]",
  "{}",
  "\u202eevil",
  "\ufeff",
  "👨‍👩‍👧‍👦",
  "\r\n\r\nHTTP/1.1 200 OK",
];
const loneSurrogate = fc
  .tuple(fc.string({ maxLength: 4 }), fc.integer({ min: 0xd800, max: 0xdfff }), fc.string({ maxLength: 4 }))
  .map(([a, c, b]) => `${a}${String.fromCharCode(c)}${b}`);
const weird = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...INJECTIONS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 10 }) },
  { weight: 1, arbitrary: loneSurrogate },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }).map((s) => `${s}\u0000${s}`) },
  { weight: 1, arbitrary: fc.constant("x".repeat(9000)) },
);
const liveId = fc.constantFrom(
  "⟦A.sid⟧",
  "⟦B.sid⟧",
  "⟦A.userMsg⟧",
  "⟦A.botMsg⟧",
  "⟦B.userMsg⟧",
  "⟦B.botMsg⟧",
);
const idLike = fc.oneof(
  { weight: 4, arbitrary: liveId },
  { weight: 2, arbitrary: fc.uuid() },
  { weight: 3, arbitrary: weird },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "00000000-0000-0000-0000-000000000000",
      "ffffffff-ffff-4fff-bfff-ffffffffffff",
      "⟦A.sid⟧ ",
      " ⟦A.sid⟧",
      "⟦A.sid⟧\u0000",
      "⟦A.sid⟧' OR '1'='1",
      "{⟦A.sid⟧}",
    ),
  },
);
/** A JSON text for a value: ids, strings, numbers (also as strings), odd literals, nesting. */
const valueText: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: idLike.map((s) => JSON.stringify(s)) },
  { weight: 2, arbitrary: fc.integer().map((n) => JSON.stringify(n)) },
  { weight: 1, arbitrary: fc.integer({ min: -3, max: 9 }).map((n) => `"${n}"`) },
  { weight: 1, arbitrary: fc.double().map((n) => JSON.stringify(n) ?? "null") },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "true",
      "false",
      "null",
      "1e309",
      "-0",
      "1.0",
      "12345678901234567890123456789",
      '"\\ud800"',
      '"\\udfff\\ud800"',
      '"a\\u0000b"',
      '"\\u0000"',
      '"  "',
      '""',
      "[]",
      "{}",
      '{"__proto__":{"polluted":true}}',
      '{"constructor":{"prototype":{"polluted":true}}}',
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "null") },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 50, max: 30_000 }).map((d) => `${"[".repeat(d)}${"]".repeat(d)}`),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 50, max: 20_000 }).map((d) => `${'{"a":'.repeat(d)}1${"}".repeat(d)}`),
  },
);
const KEYS = [
  "session_id",
  "message_id",
  "content",
  "expected_version",
  "regenerate",
  "user_id",
  "metadata",
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
];
const key = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...KEYS) }, { weight: 1, arbitrary: weird });
/** An object whose fields are mostly the contract's, with hostile values, extra and duplicated keys. */
const objectText = fc
  .array(fc.tuple(key, valueText), { maxLength: 6 })
  .map((pairs) => `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`);
/** A nearly valid body: the right fields, one of them hostile or missing. */
const nearlyValid = fc
  .record({
    session_id: idLike,
    message_id: idLike,
    content: fc.oneof(weird, fc.constant("hello")),
    expected_version: fc.oneof(fc.constant(undefined), fc.integer({ min: -1, max: 4 }), fc.constant("1")),
    regenerate: fc.oneof(fc.constant(undefined), fc.boolean(), fc.constant("true")),
  })
  .map((o) => JSON.stringify(o));

const MB = 1 << 20;
const HUGE = [
  Buffer.alloc(MB, "a"),
  Buffer.from(`{"session_id":"⟦A.sid⟧","content":"${"é".repeat(MB / 2)}"}`),
  Buffer.from(`{"metadata":{"k":"${"x".repeat(MB)}"}}`),
  Buffer.from("[".repeat(MB)),
];
const INVALID_UTF8 = [
  [0xff],
  [0xc3, 0x28],
  [0xed, 0xa0, 0x80], // an encoded surrogate
  [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
  [0xe2, 0x82], // truncated
  [0xc0, 0xaf], // overlong "/"
];

interface BodySpec {
  /** Text with placeholders, or bytes. */
  text?: string;
  bytes?: number[];
  hugeIndex?: number;
}
const body: fc.Arbitrary<BodySpec | undefined> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 5, arbitrary: objectText.map((text) => ({ text })) },
  { weight: 4, arbitrary: nearlyValid.map((text) => ({ text })) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.oneof(objectText, nearlyValid), fc.nat())
      .map(([t, n]) => ({ text: t.slice(0, n % Math.max(1, t.length)) })),
  },
  { weight: 1, arbitrary: fc.json().map((text) => ({ text })) },
  { weight: 1, arbitrary: weird.map((text) => ({ text })) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom(...INVALID_UTF8), fc.boolean()).map(([bad, inJson]) => ({
      bytes: inJson
        ? [...Buffer.from('{"session_id":"⟦A.sid⟧","content":"'), ...bad, ...Buffer.from('"}')]
        : bad,
    })),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((a) => ({ bytes: [...a] })) },
  { weight: 1, arbitrary: fc.nat(HUGE.length - 1).map((hugeIndex) => ({ hugeIndex })) },
);

const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constant("application/json") },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      undefined,
      "application/json; charset=utf-8",
      "APPLICATION/JSON",
      "application/problem+json",
      "application/merge-patch+json",
      "text/plain",
      "text/json",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=xyz",
      "application/json; charset=latin1",
      "application/jsonx",
      "application/octet-stream",
      "",
      ";",
      "*/*",
    ),
  },
  { weight: 1, arbitrary: weird },
);
const authorization = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("Bearer ⟦A.token⟧", "Bearer ⟦B.token⟧") },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      undefined,
      "bearer ⟦A.token⟧",
      "Bearer ⟦A.token⟧x",
      "Bearer ⟦A.token⟧ ⟦B.token⟧",
      "Bearer",
      "Bearer ",
      "Basic dXNlcjpwYXNz",
      "Bearer null",
      "Bearer ' OR '1'='1",
      `Bearer ${"A".repeat(43)}`,
      `Bearer ${"x".repeat(10_000)}`,
    ),
  },
  { weight: 1, arbitrary: weird.map((w) => `Bearer ${w}`) },
);
const idempotencyKey = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constantFrom("fuzz-key-1", "fuzz-key-2") }, // reused with other bodies: 422
  { weight: 1, arbitrary: fc.uuid() },
  { weight: 1, arbitrary: fc.constantFrom("", " ", "k".repeat(300), "ключ", "a\tb") },
  { weight: 1, arbitrary: weird },
);
const ifMatch = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constantFrom('"1"', 'W/"2"', "*", '"abc"', "1", '"99999999999"', "") },
  { weight: 1, arbitrary: weird },
);
const extraHeaders = fc.dictionary(
  fc.oneof(
    fc.constantFrom(
      "x-forwarded-for",
      "origin",
      "accept",
      "content-encoding",
      "x-http-method-override",
      "host",
    ),
    fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/),
  ),
  weird,
  { maxKeys: 3 },
);
const query = fc.dictionary(
  fc.oneof(
    fc.constantFrom("after_seq", "limit", "session_id", "message_id", "__proto__", "constructor"),
    weird,
  ),
  fc.oneof(valueText, weird, fc.integer().map(String)),
  { maxKeys: 3 },
);

interface FuzzRequest {
  fn: string;
  pathId: string;
  headers: Record<string, string | undefined>;
  query: Record<string, string>;
  body: BodySpec | undefined;
  base64: boolean;
}
const chatFunctions = httpFunctions.map((f) => f.name).filter((n) => n !== "health" && n !== "openapi");
/** The valid body of each function for session `who`: the base that nearlyValidFor mutates. */
function validBodies(fn: string, who: "A" | "B"): [string, string][][] {
  const sid: [string, string] = ["session_id", JSON.stringify(`⟦${who}.sid⟧`)];
  const user: [string, string] = ["message_id", JSON.stringify(`⟦${who}.userMsg⟧`)];
  const bot: [string, string] = ["message_id", JSON.stringify(`⟦${who}.botMsg⟧`)];
  switch (fn) {
    case "sessions-create":
      return [
        [
          ["user_id", '"fuzz-user"'],
          ["metadata", '{"plan":"free"}'],
        ],
      ];
    case "messages-post":
      return [[sid, ["content", '"hello"']]];
    case "messages-edit":
      return [
        [sid, user, ["content", '"edited"'], ["regenerate", "false"]],
        [sid, user, ["content", '"edited"'], ["expected_version", "1"]], // stale after the first edit: 409
        [sid, bot, ["content", '"edited"']], // the bot's message: 409 message_not_editable
      ];
    case "messages-delete":
      return [
        [sid, bot],
        [sid, user],
      ];
    default:
      return [];
  }
}
/** A valid body with one field replaced, dropped or added (or none: the 2xx paths get fuzzed too). */
function nearlyValidFor(fn: string, who: "A" | "B"): fc.Arbitrary<BodySpec | undefined> {
  const bases = validBodies(fn, who);
  if (bases.length === 0) return body;
  return fc.constantFrom(...bases).chain((base) => mutated(base));
}
function mutated(base: [string, string][]): fc.Arbitrary<BodySpec | undefined> {
  const text = (pairs: [string, string][]) => ({
    text: `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`,
  });
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant(text(base)) },
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.nat(base.length - 1), valueText)
        .map(([i, v]) => text(base.map(([k, old], j) => [k, j === i ? v : old]))),
    },
    { weight: 1, arbitrary: fc.nat(base.length - 1).map((i) => text(base.filter((_, j) => j !== i))) },
    { weight: 1, arbitrary: fc.tuple(key, valueText).map((extra) => text([...base, extra])) },
  );
}
const fnArb = fc.oneof(
  { weight: 20, arbitrary: fc.constantFrom(...chatFunctions) },
  { weight: 1, arbitrary: fc.constantFrom("health", "openapi") },
);
const directRequest: fc.Arbitrary<FuzzRequest> = fc
  .tuple(fnArb, fc.constantFrom("A" as const, "B" as const))
  .chain(([fn, who]) =>
    fc.record({
      fn: fc.constant(fn),
      pathId: fc.oneof(
        { weight: 2, arbitrary: fc.constant(`⟦${who}.sid⟧`) },
        { weight: 3, arbitrary: idLike },
      ),
      headers: fc
        .record({
          authorization: fc.oneof(
            // an erase with the right token succeeds and costs a re-seed: keep those rarer
            { weight: fn === "session-erase" ? 1 : 4, arbitrary: fc.constant(`Bearer ⟦${who}.token⟧`) },
            { weight: 6, arbitrary: authorization },
          ),
          "content-type": contentType,
          "idempotency-key": idempotencyKey,
          "if-match": ifMatch,
          extra: extraHeaders,
        })
        .map(({ extra, ...h }) => ({ ...extra, ...h })),
      query,
      body: fc.oneof({ weight: 1, arbitrary: nearlyValidFor(fn, who) }, { weight: 1, arbitrary: body }),
      base64: fc.boolean(),
    }),
  );

function bodyBytes(spec: BodySpec | undefined): Buffer {
  if (!spec) return Buffer.alloc(0);
  if (spec.hugeIndex !== undefined)
    return Buffer.from(resolve((HUGE[spec.hugeIndex] as Buffer).toString("latin1")), "latin1");
  if (spec.bytes) return Buffer.from(resolve(Buffer.from(spec.bytes).toString("latin1")), "latin1");
  return Buffer.from(resolve(spec.text ?? ""), "utf8");
}

/** The request that would erase a live session; re-seeded afterwards so the fuzz keeps real targets. */
/** Fresh targets now and then: deletes and edits wear the seeded messages out. */
async function refreshSeeds(count: number) {
  if (count % 400 !== 0) return;
  seeds.A = await createSeed();
  seeds.B = await createSeed();
  lastCounts = undefined;
}

async function reseedIfErased() {
  for (const who of ["A", "B"] as const) {
    const r = await db.pool.query("SELECT 1 FROM sessions WHERE session_id = $1", [seeds[who].sid]);
    if (r.rowCount === 0) seeds[who] = await createSeed();
  }
  lastCounts = undefined;
}

/**
 * Row counts before a request: those measured after the previous one (nothing else writes: no schedules,
 * no relay, requests one at a time), so each request costs one count query, not two.
 */
let lastCounts: Record<string, number> | undefined;
async function countsBefore(): Promise<Record<string, number>> {
  lastCounts ??= await rowCounts(db.pool);
  return lastCounts;
}
async function countsAfter(status: number, before: Record<string, number>, described: () => string) {
  const after = await rowCounts(db.pool);
  lastCounts = after;
  if (status >= 400) expect(after, `a ${status} changed something: ${described()}`).toEqual(before);
}

/** encodeURIComponent, except that a lone surrogate goes out as its (invalid) 3-byte encoding. */
const encodeSegment = (s: string) =>
  s.isWellFormed()
    ? encodeURIComponent(s)
    : encodeURIComponent(s.toWellFormed()).replace(/%EF%BF%BD/g, "%ED%A0%80");

const CODES = new Set(Object.keys(statusOf));

function assertContract(
  where: string,
  status: number,
  headers: Record<string, string>,
  text: string,
  described: () => string,
): void {
  if (status >= 500) throw new Error(`${where}: ${status} for ${described()}\n${text.slice(0, 500)}`);
  if (status >= 400 && headers["content-type"] !== "application/problem+json")
    throw new Error(
      `${where}: ${status} without problem+json (${headers["content-type"]}) for ${described()}\n${text.slice(0, 300)}`,
    );
  expect(status, described()).toBeGreaterThanOrEqual(200);
  if (status < 400) return;
  expect(headers["content-type"], described()).toBe("application/problem+json");
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(Object.keys(body).sort(), described()).toEqual(
    expect.arrayContaining(["code", "detail", "request_id", "status", "title", "type"]),
  );
  for (const k of ["code", "detail", "request_id", "title", "type"])
    expect(typeof body[k], `${k}: ${described()}`).toBe("string");
  expect(body.status, described()).toBe(status);
  expect(CODES.has(body.code as string), `unknown code ${String(body.code)}`).toBe(true);
  expect(statusOf[body.code as keyof typeof statusOf], described()).toBe(status);
  expect(body.request_id, described()).toBe(headers["x-request-id"]);
  if (body.errors !== undefined) {
    expect(Array.isArray(body.errors)).toBe(true);
    for (const e of body.errors as { path: unknown; message: unknown }[]) {
      expect(typeof e.path).toBe("string");
      expect(typeof e.message).toBe("string");
    }
  }
}

/** A 4xx's code is one docs/openapi.json lists at its status for the operation (or the `$default` route) answering it. */
function assertCodeDocumented(
  method: string,
  path: string,
  status: number,
  text: string,
  described: () => string,
) {
  if (status < 400) return;
  const code = (JSON.parse(text) as { code: string }).code;
  expect(
    documentedProblemCodes(method, path, status),
    `${method} ${path} → ${status} ${code}, not listed there: ${described()}`,
  ).toContain(code);
}

const printable = (r: unknown) => {
  const s = JSON.stringify(r, (_, v) =>
    typeof v === "string" && v.length > 200 ? `${v.slice(0, 200)}…(${v.length})` : v,
  );
  return s.length > 2000 ? `${s.slice(0, 2000)}…` : s;
};

describe("fuzzing the HTTP contract", () => {
  it(`direct handler calls: ${DIRECT_RUNS} hostile requests, no 5xx, problem+json on 4xx, no change on 4xx`, async () => {
    await fc.assert(
      fc.asyncProperty(directRequest, async (req) => {
        const spec = httpFunctions.find((f) => f.name === req.fn);
        if (!spec) throw new Error(req.fn);
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = resolve(v);
        const bytes = bodyBytes(req.body);
        const params: Record<string, string> = spec.route.path.includes("{session_id}")
          ? { session_id: resolve(req.pathId) }
          : {};
        const query = Object.fromEntries(Object.entries(req.query).map(([k, v]) => [resolve(k), resolve(v)]));
        const qs = new URLSearchParams(query).toString();
        const event: APIGatewayProxyEventV2 = buildHttpApiEvent(
          {
            method: spec.route.method,
            url: `${spec.route.path.replace("{session_id}", encodeSegment(params.session_id ?? ""))}${qs ? `?${qs}` : ""}`,
            headers,
            body: bytes,
            sourceIp: "203.0.113.7",
          },
          {
            routeKey: `${spec.route.method} ${spec.route.path}`,
            pathParameters: params,
            requestId: newApiGatewayRequestId(),
          },
        );
        if (bytes.length > 0 && req.base64) {
          // as API Gateway sends a binary media type: base64, whatever the content type says
          event.body = bytes.toString("base64");
          event.isBase64Encoded = true;
        }
        const before = await countsBefore();
        const res = (await (handlers.get(req.fn) as HttpLambda)(
          event,
          lambdaContext(req.fn),
        )) as APIGatewayProxyStructuredResultV2;
        sent.direct++;
        tally("direct", res.statusCode ?? 0);
        const lower = Object.fromEntries(
          Object.entries(res.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]),
        );
        const status = res.statusCode ?? 0;
        const describeReq = () => printable({ ...req, resolvedPath: params });
        assertContract("handler", status, lower, res.body ?? "", describeReq);
        assertCodeDocumented(spec.route.method, spec.route.path, status, res.body ?? "", describeReq);
        await countsAfter(status, before, () => printable(req));
        if (req.fn === "session-erase" && status === 204) await reseedIfErased();
        await refreshSeeds(sent.direct);
      }),
      { numRuns: DIRECT_RUNS, seed: SEED, endOnFailure: true },
    );
  }, 120_000);

  // Methods node's HTTP parser knows (it answers any other with a bare 400 before the runner sees it).
  const METHODS = [
    "GET",
    "POST",
    "PUT",
    "DELETE",
    "PATCH",
    "HEAD",
    "OPTIONS",
    "PROPFIND",
    "PURGE",
    "SEARCH",
    "get",
    "post",
  ];
  /** A path template, the id for its {id} (placeholders resolved when sent), and whether to send it raw. */
  type PathSpec = [string, string, boolean];
  const pathArb: fc.Arbitrary<PathSpec> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .tuple(
          fc.constantFrom("/sessions/{id}", "/sessions/{id}/messages", "/sessions/{id}/suggestions"),
          idLike,
          fc.boolean(),
        )
        .map(([t, id, raw]): PathSpec => [t, id, raw]),
    },
    {
      weight: 4,
      arbitrary: fc
        .constantFrom(
          "/sessions/create",
          "/messages/post",
          "/messages/edit",
          "/messages/delete",
          "/health",
          "/openapi.json",
        )
        .map((p): PathSpec => [p, "", false]),
    },
    {
      weight: 2,
      arbitrary: fc
        .constantFrom(
          "/",
          "/sessions",
          "/sessions/",
          "/messages",
          "/admin",
          "/sessions/create/",
          "/SESSIONS/CREATE",
          "/sessions/x/y/z",
          "/sessions/%00",
          "/sessions/%FF",
          "/sessions/%",
          "/sessions/%E2%80%AE",
          "/messages/post%00",
          "/openapi.json/..",
          `/sessions/${"a".repeat(5000)}`,
          "/%2e%2e/%2e%2e/etc/passwd",
        )
        .map((p): PathSpec => [p, "", false]),
    },
    { weight: 1, arbitrary: fc.webPath().map((p): PathSpec => [p || "/", "", false]) },
  );
  /** Mostly a real route with its own method (so the handlers get the requests), else anything. */
  const routed = fc
    .tuple(fc.constantFrom(...httpFunctions), fc.constantFrom("A" as const, "B" as const))
    .chain(([f, who]) =>
      fc.record({
        method: fc.oneof(
          { weight: 5, arbitrary: fc.constant(f.route.method) },
          { weight: 1, arbitrary: fc.constantFrom(...METHODS) },
        ),
        path: f.route.path.includes("{session_id}")
          ? fc
              .tuple(
                fc.oneof(
                  { weight: 2, arbitrary: fc.constant(`⟦${who}.sid⟧`) },
                  { weight: 3, arbitrary: idLike },
                ),
                fc.boolean(),
              )
              .map(([id, raw]): PathSpec => [f.route.path.replace("{session_id}", "{id}"), id, raw])
          : fc.constant<PathSpec>([f.route.path, "", false]),
        headers: fc
          .record({
            authorization: fc.oneof(
              { weight: f.name === "session-erase" ? 1 : 4, arbitrary: fc.constant(`Bearer ⟦${who}.token⟧`) },
              { weight: 6, arbitrary: authorization },
            ),
            "content-type": contentType,
            "idempotency-key": idempotencyKey,
            "if-match": ifMatch,
            extra: extraHeaders,
          })
          .map(({ extra, ...h }) => ({ ...extra, ...h })),
        query,
        body: fc.oneof({ weight: 1, arbitrary: nearlyValidFor(f.name, who) }, { weight: 1, arbitrary: body }),
      }),
    );
  const anything = fc.record({
    method: fc.constantFrom(...METHODS),
    path: pathArb,
    headers: fc
      .record({
        authorization,
        "content-type": contentType,
        "idempotency-key": idempotencyKey,
        "if-match": ifMatch,
        extra: extraHeaders,
      })
      .map(({ extra, ...h }) => ({ ...extra, ...h })),
    query,
    body,
  });
  const httpRequest = fc.oneof({ weight: 2, arbitrary: routed }, { weight: 1, arbitrary: anything });
  /** fetch only sends ByteStrings without CR, LF or NUL; other characters become "?". */
  const headerSafe = (v: string) => v.replace(/[^\t\x20-\x7e\x80-\xff]/g, "?").trim();

  it(`real HTTP through the runner: ${HTTP_RUNS} hostile requests (methods, paths, framing)`, async () => {
    await fc.assert(
      fc.asyncProperty(httpRequest, async (req) => {
        const [template, id, raw] = req.path;
        const path = template.replace("{id}", raw ? resolve(id) : encodeSegment(resolve(id)));
        // API Gateway takes at most 10 KiB of request line and headers (node: 16 KiB); past that neither
        // hands the request to anything of ours, so the fuzz stays below it
        const qs = new URLSearchParams(
          Object.entries(req.query).map(([k, v]): [string, string] => [resolve(k), resolve(v)]),
        )
          .toString()
          .slice(0, Math.max(0, 6000 - path.length));
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) {
          if (v === undefined || ["host", "content-encoding"].includes(k)) continue;
          const safe = headerSafe(resolve(v));
          if (safe) headers[k] = safe.slice(0, 2000);
        }
        const bytes = bodyBytes(req.body);
        const method = req.method;
        const canHaveBody = !["GET", "HEAD", "get"].includes(method);
        const before = await countsBefore();
        const url = `${runner.url}${path}${qs ? `?${qs}` : ""}`;
        const res = await fetch(url, {
          method,
          headers,
          body: canHaveBody && bytes.length > 0 ? bytes : undefined,
        });
        const text = await res.text();
        sent.http++;
        tally("http", res.status);
        const lower = Object.fromEntries([...res.headers.entries()]);
        const describe = () => printable({ method, path, headers, bodyBytes: bytes.length, body: req.body });
        if (method === "HEAD") {
          expect(res.status, describe()).toBeLessThan(500);
        } else {
          assertContract("http", res.status, lower, text, describe);
          // the path as sent (fetch resolves dot segments) and the method as sent (fetch upper-cases "get")
          const sent = new Request(url, { method });
          assertCodeDocumented(sent.method, new URL(sent.url).pathname, res.status, text, describe);
        }
        await countsAfter(res.status, before, describe);
        if (res.status === 204 && method.toUpperCase() === "DELETE") await reseedIfErased();
        await refreshSeeds(sent.http);
      }),
      { numRuns: HTTP_RUNS, seed: SEED, endOnFailure: true },
    );
  }, 120_000);

  const SAMPLES = [
    "👨‍👩‍👧‍👦 family",
    "🏳️‍🌈",
    "שלום עולם",
    "مرحبا بالعالم",
    "mixed עברית and English",
    "e\u0301 vs é",
    "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǫ̗̻",
    "a\u200db",
    "\u200d",
    "\u200b zero width space",
    "\u202eright-to-left override",
    "\ufeffBOM first",
    "𝕳𝖊𝖑𝖑𝖔 🤖",
    "  leading and trailing  ",
    "line\r\nbreaks\ttabs",
    "\u0001\u001f control",
    "ﷺ ﷽",
    "🇺🇳🇪🇺",
    "' OR '1'='1'; DROP TABLE messages; --",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a template injection, on purpose
    "${process.exit()} {{7*7}} <%= 1 %>",
    "\\u0000 is written, not a NUL",
  ];
  const contentArb = fc
    .oneof(
      { weight: 2, arbitrary: fc.constantFrom(...SAMPLES) },
      { weight: 3, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 60 }) },
      { weight: 2, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 60 }) },
    )
    .filter((s) => !isBlank(s) && !s.includes("\u0000") && s.isWellFormed());

  it(`stored content round-trips byte for byte through post → history (${ROUND_TRIP_RUNS} strings)`, async () => {
    const own = await createSeed();
    const auth = { authorization: `Bearer ${own.token}` };
    await fc.assert(
      fc.asyncProperty(contentArb, async (content) => {
        const posted = await fetch(`${runner.url}/messages/post`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify({ session_id: own.sid, content }),
        });
        expect(posted.status).toBe(201);
        const turn = (await posted.json()) as { message: { seq: number; content: string } };
        const page = await fetch(
          `${runner.url}/sessions/${own.sid}/messages?after_seq=${turn.message.seq - 1}&limit=1`,
          { headers: auth },
        );
        expect(page.status).toBe(200);
        // compare the raw bytes of the JSON text as well as the parsed string
        const raw = Buffer.from(await page.arrayBuffer());
        const history = JSON.parse(raw.toString("utf8")) as { messages: { content: string; seq: number }[] };
        sent.roundTrip += 2;
        expect(history.messages[0]?.seq).toBe(turn.message.seq);
        const got = history.messages[0]?.content ?? "";
        expect(
          Buffer.from(got, "utf8").equals(Buffer.from(content, "utf8")),
          printable({ content, got }),
        ).toBe(true);
        expect(Buffer.from(turn.message.content, "utf8").equals(Buffer.from(content, "utf8"))).toBe(true);
        expect(raw.includes(Buffer.from(JSON.stringify(content).slice(1, -1), "utf8"))).toBe(true);
      }),
      { numRuns: ROUND_TRIP_RUNS, seed: SEED, endOnFailure: true },
    );
  }, 60_000);

  // The 5xx answers this fuzz found (sessions/create with strings Postgres cannot store, and nesting that
  // overflowed JSON.stringify), fixed in ac91e31 ("user_id/metadata storable-text rules"): kept as
  // regressions, each reproduced on its own.
  describe("regressions: 5xx answers the fuzz found", () => {
    const create = async (body: string, headers: Record<string, string> = {}) => {
      const before = await rowCounts(db.pool);
      const event = buildHttpApiEvent(
        {
          method: "POST",
          url: "/sessions/create",
          headers: { "content-type": "application/json", ...headers },
          body: Buffer.from(body),
          sourceIp: "203.0.113.7",
        },
        { routeKey: "POST /sessions/create", pathParameters: {}, requestId: newApiGatewayRequestId() },
      );
      const res = (await (handlers.get("sessions-create") as HttpLambda)(
        event,
        lambdaContext("sessions-create"),
      )) as APIGatewayProxyStructuredResultV2;
      lastCounts = undefined;
      return { res, body: JSON.parse(res.body ?? "{}"), before };
    };
    const expectRejected = async (body: string, headers: Record<string, string> = {}) => {
      const { res, body: problem, before } = await create(body, headers);
      expect({ status: res.statusCode, code: problem.code }).toEqual({
        status: 400,
        code: "validation_failed",
      });
      expect(await rowCounts(db.pool)).toEqual(before);
    };

    // was: 500 (Postgres 22021, invalid byte sequence 0x00)
    it("a user_id with a NUL character is a 400, not a 500", async () => {
      await expectRejected('{"user_id":"a\\u0000b"}');
    });
    // was: 500 (22P02 from jsonb: the session.created event carries the user_id)
    it("a user_id with a lone surrogate is a 400, not a 500", async () => {
      await expectRejected('{"user_id":"\\udfff\\ud800"}');
    });
    // was: 500 (22P02 from jsonb)
    it("metadata with a lone surrogate is a 400, not a 500", async () => {
      await expectRejected('{"metadata":{"k":"\\ud800"}}');
      await expectRejected('{"metadata":{"\\ud800":1}}');
    });
    // was: 500 (RangeError: JSON.stringify in assertMetadataSize overflowed the stack at ~5000 levels)
    it("deeply nested metadata is a 400, not a 500", async () => {
      await expectRejected(`{"metadata":{"a":${'{"a":'.repeat(6000)}1${"}".repeat(6001)}}`);
    });
  });

  describe("bugs the fuzz found", () => {
    // was: 500 (the Idempotency-Key's request hash stringified the metadata before it was validated)
    it("deeply nested metadata with an Idempotency-Key is a 400, not a 500", async () => {
      const before = await rowCounts(db.pool);
      const event = buildHttpApiEvent(
        {
          method: "POST",
          url: "/sessions/create",
          headers: { "content-type": "application/json", "idempotency-key": crypto.randomUUID() },
          body: Buffer.from(`{"metadata":{"a":${'{"a":'.repeat(6000)}1${"}".repeat(6001)}}`),
          sourceIp: "203.0.113.7",
        },
        { routeKey: "POST /sessions/create", pathParameters: {}, requestId: newApiGatewayRequestId() },
      );
      const res = (await (handlers.get("sessions-create") as HttpLambda)(
        event,
        lambdaContext("sessions-create"),
      )) as APIGatewayProxyStructuredResultV2;
      lastCounts = undefined;
      expect({ status: res.statusCode, code: JSON.parse(res.body ?? "{}").code }).toEqual({
        status: 400,
        code: "validation_failed",
      });
      expect(await rowCounts(db.pool)).toEqual(before);
    });
  });

  it("sent at least 10,000 requests in this run", () => {
    if (SCALE >= 1) expect(sent.direct + sent.http + sent.roundTrip).toBeGreaterThanOrEqual(10_000);
  });
});
