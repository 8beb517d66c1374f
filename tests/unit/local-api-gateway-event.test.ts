import { describe, expect, it } from "vitest";
import {
  buildHttpApiEvent,
  formatRequestTime,
  isTextContentType,
  newApiGatewayRequestId,
} from "../../local/api-gateway-event.ts";

const now = new Date("2026-11-26T05:33:00.123Z");
const route = (routeKey: string, pathParameters: Record<string, string> = {}) => ({
  routeKey,
  pathParameters,
  requestId: "REQ1234567890A=",
  now,
});

describe("buildHttpApiEvent (payload format 2.0)", () => {
  it("keeps query and header names such as __proto__ and constructor as own properties, as the JSON event has", () => {
    const event = buildHttpApiEvent(
      {
        method: "DELETE",
        url: "/messages/delete?__proto__=x&constructor=1&session_id=s",
        // as Node's parser hands them over: own properties (a literal would set the prototype instead)
        headers: Object.fromEntries([
          ["__proto__", ["h"]],
          ["Constructor", ["c"]],
        ]),
        body: Buffer.alloc(0),
        sourceIp: "10.0.0.9",
      },
      route("DELETE /messages/delete"),
    );
    // what the handler gets in AWS: the event as JSON, parsed
    expect(event.queryStringParameters).toEqual(
      JSON.parse('{"__proto__":"x","constructor":"1","session_id":"s"}'),
    );
    expect(Object.keys(event.queryStringParameters ?? {})).toEqual([
      "__proto__",
      "constructor",
      "session_id",
    ]);
    expect(Object.hasOwn(event.headers, "__proto__")).toBe(true);
    expect(event.headers.constructor).toBe("c");
  });

  it("builds a GET event with query, cookies and path parameters", () => {
    const event = buildHttpApiEvent(
      {
        method: "get",
        url: "/sessions/abc/messages?limit=10&tag=a&tag=b&q=a%20b",
        headers: {
          Host: ["api.local:8000"],
          "User-Agent": ["curl/8"],
          Cookie: ["a=1; b=2", "c=3"],
          "X-Forwarded-For": ["1.1.1.1", "2.2.2.2"],
          Accept: "application/json",
        },
        body: Buffer.alloc(0),
        sourceIp: "10.0.0.9",
      },
      route("GET /sessions/{session_id}/messages", { session_id: "abc" }),
    );
    expect(event).toEqual({
      version: "2.0",
      routeKey: "GET /sessions/{session_id}/messages",
      rawPath: "/sessions/abc/messages",
      rawQueryString: "limit=10&tag=a&tag=b&q=a%20b",
      cookies: ["a=1", "b=2", "c=3"],
      headers: {
        host: "api.local:8000",
        "user-agent": "curl/8",
        // API Gateway appends the client's address to what the client sent, and says it came over HTTPS
        "x-forwarded-for": "1.1.1.1,2.2.2.2, 10.0.0.9",
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
        accept: "application/json",
      },
      queryStringParameters: { limit: "10", tag: "a,b", q: "a b" },
      pathParameters: { session_id: "abc" },
      isBase64Encoded: false,
      requestContext: {
        accountId: "000000000000",
        apiId: "local",
        domainName: "api.local",
        domainPrefix: "api",
        http: {
          method: "GET",
          path: "/sessions/abc/messages",
          protocol: "HTTP/1.1",
          sourceIp: "10.0.0.9",
          userAgent: "curl/8",
        },
        requestId: "REQ1234567890A=",
        routeKey: "GET /sessions/{session_id}/messages",
        stage: "$default",
        time: "26/Nov/2026:05:33:00 +0000",
        timeEpoch: now.getTime(),
      },
    });
  });

  it("adds API Gateway's x-forwarded-* headers: the client's address, and the scheme and port it reached", () => {
    const event = buildHttpApiEvent(
      {
        method: "GET",
        url: "/health",
        headers: { "X-Forwarded-Proto": ["https"], "X-Forwarded-Port": ["1"] },
        body: Buffer.alloc(0),
        sourceIp: "192.0.2.4",
        scheme: "http",
        port: 8000,
      },
      route("GET /health"),
    );
    // the client's own claims about scheme and port are replaced; there was no x-forwarded-for to append to
    expect(event.headers).toEqual({
      "x-forwarded-for": "192.0.2.4",
      "x-forwarded-proto": "http",
      "x-forwarded-port": "8000",
    });
  });

  it("leaves out cookies, queryStringParameters, pathParameters and body when there are none", () => {
    const event = buildHttpApiEvent(
      { method: "GET", url: "/health", headers: {}, body: Buffer.alloc(0), sourceIp: "127.0.0.1" },
      route("GET /health"),
    );
    expect(event.rawQueryString).toBe("");
    expect("cookies" in event).toBe(false);
    expect("queryStringParameters" in event).toBe(false);
    expect("pathParameters" in event).toBe(false);
    expect("body" in event).toBe(false);
    expect("stageVariables" in event).toBe(false);
    expect(event.isBase64Encoded).toBe(false);
    expect(event.requestContext.http.userAgent).toBe("");
  });

  it("leaves out queryStringParameters for a query string of separators only", () => {
    const event = buildHttpApiEvent(
      { method: "GET", url: "/x?&", headers: {}, body: Buffer.alloc(0), sourceIp: "127.0.0.1" },
      route("GET /x"),
    );
    // the raw query string is kept as sent, but it names no parameter
    expect(event.rawQueryString).toBe("&");
    expect("queryStringParameters" in event).toBe(false);
  });

  it("keeps a body of a single byte", () => {
    const event = buildHttpApiEvent(
      {
        method: "POST",
        url: "/echo",
        headers: { "content-type": ["text/plain"] },
        body: Buffer.from("x"),
        sourceIp: "127.0.0.1",
      },
      route("POST /echo"),
    );
    expect(event.body).toBe("x");
    expect(event.isBase64Encoded).toBe(false);
  });

  it("passes a JSON body as a utf8 string", () => {
    const body = JSON.stringify({ content: "héllo ✓" });
    const event = buildHttpApiEvent(
      {
        method: "POST",
        url: "/messages/post",
        headers: { "content-type": ["application/json; charset=utf-8"] },
        body: Buffer.from(body),
        sourceIp: "127.0.0.1",
      },
      route("POST /messages/post"),
    );
    expect(event.isBase64Encoded).toBe(false);
    expect(event.body).toBe(body);
  });

  it("base64-encodes a JSON body that is no UTF-8: its bytes reach the handler unchanged", () => {
    const bytes = Buffer.concat([Buffer.from('{"content":"'), Buffer.from([0xff]), Buffer.from('"}')]);
    const event = buildHttpApiEvent(
      {
        method: "POST",
        url: "/messages/post",
        headers: { "content-type": ["application/json"] },
        body: bytes,
        sourceIp: "127.0.0.1",
      },
      route("POST /messages/post"),
    );
    expect(event.isBase64Encoded).toBe(true);
    expect(Buffer.from(event.body ?? "", "base64")).toEqual(bytes);
  });

  it("base64-encodes a binary body", () => {
    const bytes = Buffer.from([0, 159, 146, 150, 255]);
    const event = buildHttpApiEvent(
      {
        method: "POST",
        url: "/upload",
        headers: { "content-type": ["image/png"] },
        body: bytes,
        sourceIp: "::1",
      },
      route("POST /upload"),
    );
    expect(event.isBase64Encoded).toBe(true);
    expect(event.body).toBe(bytes.toString("base64"));
  });
});

describe("isTextContentType", () => {
  it.each([
    ["application/json", true],
    ["application/problem+json", true],
    ["text/plain; charset=utf-8", true],
    ["application/xml", true],
    ["application/octet-stream", false],
    ["application/x-www-form-urlencoded", false],
    ["image/png", false],
    [undefined, false],
  ])("%s → %s", (contentType, expected) => {
    expect(isTextContentType(contentType)).toBe(expected);
  });
});

describe("request ids and times", () => {
  it("formats requestContext.time like API Gateway, in UTC", () => {
    expect(formatRequestTime(new Date("2026-01-05T23:04:09Z"))).toBe("05/Jan/2026:23:04:09 +0000");
  });

  it("makes API Gateway-shaped request ids that differ", () => {
    const a = newApiGatewayRequestId();
    expect(a).toMatch(/^[A-Za-z0-9+/]{15}=$/);
    expect(newApiGatewayRequestId()).not.toBe(a);
  });
});
