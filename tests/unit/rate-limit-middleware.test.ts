import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { resetRateLimiter, sessionHint } from "../../functions/http/rate-limit.ts";
import { newSessionToken } from "../../layers/chat/chat/tokens.ts";
import { resetConfig } from "../../layers/chat/config.ts";
import { call, type HttpLambda, httpEvent } from "../helpers/lambda-events.ts";

// before the logger module is imported
vi.hoisted(() => {
  process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
});

// No services: no REDIS_URL (the in-process limiter decides) and a database nobody can reach, so any
// request that got past the limiter to the chat service would fail with a 5xx, not a 4xx.
beforeAll(() => {
  process.env.DATABASE_URL = "postgres://nobody@127.0.0.1:1/none";
  process.env.DB_CONNECT_TIMEOUT_MS = "200";
  delete process.env.REDIS_URL;
});

function limits(perToken: number, perIp: number, windowSeconds = 60) {
  process.env.RATE_LIMIT_PER_TOKEN = String(perToken);
  process.env.RATE_LIMIT_PER_IP = String(perIp);
  process.env.RATE_LIMIT_WINDOW_SECONDS = String(windowSeconds);
  resetConfig();
  resetRateLimiter();
}
beforeEach(() => limits(3, 5));

let ipCounter = 0;
const freshIp = () => `198.51.100.${++ipCounter}`;
const from = (event: APIGatewayProxyEventV2, ip: string) => {
  event.requestContext.http.sourceIp = ip;
  return event;
};
const sid = "7b0c4a4e-1f7e-4c65-9a3e-2b1f3c4d5e6f";

async function postMalformed(ip: string, token?: string, scheme = "Bearer") {
  const { handler } = await import("../../functions/messages-post.ts");
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `${scheme} ${token}`;
  return call(
    handler,
    "messages-post",
    from(httpEvent("POST", "/messages/post", { body: "{", headers }), ip),
  );
}

describe("rate-limit middleware (handlers called with v2 events, in-process limiter)", () => {
  it("counts every request per address and answers the one over the limit with 429 problem+json", async () => {
    const ip = freshIp();
    for (let i = 0; i < 5; i++) {
      const res = await postMalformed(ip);
      expect(res.statusCode).toBe(400);
      // the fields are on every answer of a limited function, errors included
      expect(res.headers["ratelimit-policy"]).toBe('"per-ip";q=5;w=60');
      expect(res.headers.ratelimit).toBe(`"per-ip";r=${4 - i};t=60`);
    }
    const res = await postMalformed(ip);
    expect(res.statusCode).toBe(429);
    expect(res.headers["content-type"]).toBe("application/problem+json");
    expect(res.json).toMatchObject({
      status: 429,
      code: "rate_limited",
      title: "Too many requests",
      type: "https://chat-backend.example/problems/rate-limited",
    });
    expect(res.json.request_id).toBe(res.headers["x-request-id"]);
    expect(typeof res.json.detail).toBe("string");
    expect(Number(res.headers["retry-after"])).toBeGreaterThanOrEqual(59);
    expect(res.headers.ratelimit).toMatch(/^"per-ip";r=0;t=(59|60)$/);
    expect(res.headers["ratelimit-policy"]).toBe('"per-ip";q=5;w=60');
    // the security headers are added to the 429 as to any other answer
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    // another address is not affected
    expect((await postMalformed(freshIp())).statusCode).toBe(400);
  });

  it("limits a token across addresses, and reports both policies", async () => {
    const token = newSessionToken();
    for (let i = 0; i < 3; i++) {
      const res = await postMalformed(freshIp(), token);
      expect(res.statusCode).toBe(400);
      expect(res.headers["ratelimit-policy"]).toBe('"per-token";q=3;w=60, "per-ip";q=5;w=60');
      expect(res.headers.ratelimit).toBe(`"per-token";r=${2 - i};t=60, "per-ip";r=4;t=60`);
    }
    const res = await postMalformed(freshIp(), token);
    expect(res.statusCode).toBe(429);
    expect(res.headers.ratelimit).toMatch(/^"per-token";r=0;t=(59|60), "per-ip";r=5;t=60$/);
    // the token is limited, the address is not: another token from the same address goes through
    const ip = freshIp();
    expect((await postMalformed(ip, token)).statusCode).toBe(429);
    expect((await postMalformed(ip, newSessionToken())).statusCode).toBe(400);
  });

  it("reads the scheme in any letter case, as authentication does: `bearer` counts against the same token", async () => {
    const token = newSessionToken();
    for (const scheme of ["bearer", "BEARER", "Bearer"]) {
      const res = await postMalformed(freshIp(), token, scheme);
      expect(res.statusCode, scheme).toBe(400);
      expect(res.headers["ratelimit-policy"], scheme).toMatch(/^"per-token"/);
    }
    expect((await postMalformed(freshIp(), token, "bearer")).statusCode).toBe(429);
  });

  it("checks before anything else: a limited request is not parsed and never reaches the chat service", async () => {
    limits(0, 1);
    const ip = freshIp();
    expect((await postMalformed(ip)).statusCode).toBe(400);
    // a well-formed request would need the (unreachable) database: a 5xx if it got that far
    const { handler } = await import("../../functions/messages-post.ts");
    const ok = httpEvent("POST", "/messages/post", {
      body: { session_id: sid, content: "hi" },
      headers: { authorization: `Bearer ${newSessionToken()}` },
    });
    const res = await call(handler, "messages-post", from(ok, ip));
    expect(res.statusCode).toBe(429);
    // a 1 MB body is not even read
    const big = httpEvent("POST", "/messages/post", { body: Buffer.alloc(1 << 20, "a") });
    expect((await call(handler, "messages-post", from(big, ip))).statusCode).toBe(429);
  });

  it("does not limit the health check and the OpenAPI document", async () => {
    limits(1, 1);
    const { handler } = await import("../../functions/openapi.ts");
    const ip = freshIp();
    for (let i = 0; i < 5; i++) {
      const res = await call(handler, "openapi", from(httpEvent("GET", "/openapi.json"), ip));
      expect(res.statusCode).toBe(200);
      expect(res.headers.ratelimit).toBeUndefined();
    }
    // the health handler carries no limiter at all (its checks would need services; none are asked here)
    const { rateLimit } = await import("../../functions/http/rate-limit.ts");
    expect(Object.keys(rateLimit("health"))).toEqual(["before"]);
    expect(Object.keys(rateLimit("messages-post")).sort()).toEqual(["after", "before", "onError"]);
  });

  it("turns off with limits of 0", async () => {
    limits(0, 0);
    const ip = freshIp();
    for (let i = 0; i < 20; i++) {
      const res = await postMalformed(ip, "some-token");
      expect(res.statusCode).toBe(400);
      expect(res.headers.ratelimit).toBeUndefined();
    }
  });

  it("limits every session-scoped function, counted together per token", async () => {
    limits(4, 0);
    const token = newSessionToken();
    const auth = { authorization: `Bearer ${token}` };
    const fns: [string, string, string, object | undefined][] = [
      ["session-get", "GET", `/sessions/not-a-uuid`, undefined],
      ["session-messages", "GET", `/sessions/not-a-uuid/messages`, undefined],
      ["session-suggestions", "GET", `/sessions/not-a-uuid/suggestions`, undefined],
      ["messages-edit", "PUT", "/messages/edit", { nope: 1 }],
      ["messages-delete", "DELETE", "/messages/delete", { nope: 1 }],
      ["session-erase", "DELETE", `/sessions/not-a-uuid`, undefined],
    ];
    const statuses: number[] = [];
    for (const [name, method, url, body] of fns) {
      const { handler } = (await import(`../../functions/${name}.ts`)) as { handler: HttpLambda };
      const res = await call(handler, name, httpEvent(method, url, { body, headers: auth }));
      statuses.push(res.statusCode ?? 0);
    }
    expect(statuses).toEqual([400, 400, 400, 400, 429, 429]);
  });
});

describe("sessionHint (which session's cache entries the limiter reads ahead)", () => {
  const id = "7b0c4a4e-1f7e-4c65-9a3e-2b1f3c4d5e6f";
  it("takes the path parameter, else a top-level-looking session_id string in the JSON body", () => {
    expect(sessionHint(httpEvent("GET", `/sessions/${id}/messages`))).toBe(id);
    const post = httpEvent("POST", "/messages/post", { body: { content: "hi", session_id: id } });
    expect(sessionHint(post)).toBe(id);
  });
  it("finds none in escaped text, base64 bodies, non-UUID values or no body", () => {
    const quoted = httpEvent("POST", "/messages/post", {
      body: { content: `{"session_id":"${id}"}`, session_id: "not-a-uuid" },
    });
    expect(sessionHint(quoted)).toBeUndefined();
    const b64 = httpEvent("POST", "/messages/post", { body: { session_id: id } });
    b64.body = Buffer.from(b64.body ?? "").toString("base64");
    b64.isBase64Encoded = true;
    expect(sessionHint(b64)).toBeUndefined();
    expect(sessionHint(httpEvent("POST", "/sessions/create"))).toBeUndefined();
  });
});
