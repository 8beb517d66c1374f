import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createSession,
  postMessage,
  type RunnerFixture,
  startRunnerFixture,
} from "../helpers/runner-fixture.ts";

/**
 * What a client generated from docs/openapi.json is told, against what the local runner sends, with the per-token
 * rate limit on (the other e2e files turn it off, so no answer they check carries the RateLimit fields): every
 * answer goes through the fixture's validator, which fails on a status, media type, body or contract header the
 * document does not give for that operation.
 */
let fx: RunnerFixture;
beforeAll(async () => {
  // per-IP stays off: every e2e file calls from 127.0.0.1 through the shared Redis
  fx = await startRunnerFixture({ env: { RATE_LIMIT_PER_TOKEN: "1000" } });
});
afterAll(async () => {
  await fx?.close();
});

const UNKNOWN_ID = "0b0e9a61-4a8e-4c3f-9d0b-6b1f0f6c7a11";

describe("every answer of a rate-limited operation carries RateLimit and RateLimit-Policy, which the document declares", () => {
  it("a session's whole walk: success, 304, each error status, the $default route, erase", async () => {
    const s = await createSession(fx);
    const { messageId, replyId } = await postMessage(fx, s, "hello");
    const base = `/sessions/${s.sessionId}`;
    const token = s.token;
    const statuses: number[] = [];
    const call = async (method: string, path: string, opts: Parameters<RunnerFixture["call"]>[2] = {}) => {
      const res = await fx.call(method, path, opts);
      statuses.push(res.status);
      // the fields the draft defines, on every answer the limiter saw: not only on a 429
      expect(res.headers.get("ratelimit"), `${method} ${path} ${res.status}`).toMatch(
        /^"per-token";r=\d+;t=\d+$/,
      );
      expect(res.headers.get("ratelimit-policy")).toBe('"per-token";q=1000;w=60');
      return res;
    };
    const page = await call("GET", `${base}/messages?limit=2`, { token });
    await call("GET", `${base}/messages?limit=2`, {
      token,
      headers: { "if-none-match": page.headers.get("etag") ?? "" },
    });
    await call("GET", base, { token });
    await call("GET", `${base}/suggestions`, { token });
    await call("PUT", "/messages/edit", {
      json: { session_id: s.sessionId, message_id: messageId, content: "hello again" },
      token,
    });
    await call("PUT", "/messages/edit", {
      json: { session_id: s.sessionId, message_id: messageId, content: "x" },
      headers: { "if-match": '"1"' },
      token,
    });
    await call("PUT", "/messages/edit", {
      json: { session_id: s.sessionId, message_id: replyId, content: "x" },
      token,
    });
    await call("POST", "/messages/post", { json: { session_id: "nope", content: "hi" }, token });
    await call("POST", "/messages/post", {
      rawBody: "{",
      headers: { "content-type": "application/json" },
      token,
    });
    await call("POST", "/messages/post", { rawBody: "hi", headers: { "content-type": "text/plain" }, token });
    await call("POST", "/messages/post", {
      json: { session_id: s.sessionId, content: "x".repeat(200_000) },
      token,
    });
    await call("GET", `/sessions/${UNKNOWN_ID}`, { token });
    await call("GET", base, { token: "not-the-token" });
    await call("DELETE", `/messages/delete?session_id=${s.sessionId}&message_id=${UNKNOWN_ID}`, { token });
    await call("DELETE", `/messages/delete?session_id=${s.sessionId}&message_id=${replyId}`, { token });
    await call("GET", "/nope", { token });
    await call("PATCH", "/messages/edit", { token });
    await call("DELETE", base, { token });
    expect(statuses).toEqual([
      200, 304, 200, 200, 200, 412, 409, 400, 400, 415, 413, 404, 401, 404, 200, 404, 405, 204,
    ]);
  });
});

describe("API Gateway's own answers are in the document", () => {
  // A request whose event would pass Lambda's 6 MB: the runner answers it as API Gateway does, with its own
  // {"message": …} JSON and without running the function (README, "How it works").
  const overEvent = "a".repeat(6_500_000);

  it("a body too large for Lambda: 413 application/json {message}, on a route with a body and on one without", async () => {
    const s = await createSession(fx);
    for (const [method, path] of [
      ["POST", "/messages/post"],
      ["DELETE", `/sessions/${s.sessionId}`],
      ["POST", "/nope"],
    ] as const) {
      const res = await fx.call<{ message: string }>(method, path, {
        rawBody: overEvent,
        headers: { "content-type": "application/json" },
        token: s.token,
      });
      expect([res.status, res.contentType, res.body], `${method} ${path}`).toEqual([
        413,
        "application/json",
        { message: "Request Entity Too Large" },
      ]);
    }
  });
});
