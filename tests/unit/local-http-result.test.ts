import { describe, expect, it } from "vitest";
import { toHttpResponse } from "../../local/http-result.ts";

describe("toHttpResponse (API Gateway payload 2.0 result mapping)", () => {
  it("maps a structured response with headers, cookies and a text body", () => {
    const r = toHttpResponse({
      statusCode: 201,
      headers: { "Content-Type": "application/json", "X-Count": 3, "Content-Length": "1" },
      multiValueHeaders: { "x-ignored": ["a", "b"] },
      cookies: ["a=1; HttpOnly", "b=2"],
      body: '{"ok":true}',
    });
    expect(r.statusCode).toBe(201);
    expect(r.headers).toEqual({ "content-type": "application/json", "x-count": "3" });
    expect(r.cookies).toEqual(["a=1; HttpOnly", "b=2"]);
    expect(r.body.toString()).toBe('{"ok":true}');
  });

  it('drops headers whose value is null or undefined rather than sending the text "null"', () => {
    const r = toHttpResponse({
      statusCode: 200,
      headers: { "x-null": null, "x-undefined": undefined, "x-kept": "" },
    });
    expect(r.headers).toEqual({ "x-kept": "" });
  });

  it("decodes a base64 body", () => {
    const r = toHttpResponse({
      statusCode: 200,
      isBase64Encoded: true,
      body: Buffer.from([1, 2, 255]).toString("base64"),
    });
    expect([...r.body]).toEqual([1, 2, 255]);
  });

  it("answers an empty body when the structured response has none", () => {
    const r = toHttpResponse({ statusCode: 204 });
    expect(r.statusCode).toBe(204);
    expect(r.body.length).toBe(0);
  });

  it("turns a string into a 200 JSON response, passed as-is", () => {
    const r = toHttpResponse("hello");
    expect(r).toMatchObject({ statusCode: 200, headers: { "content-type": "application/json" } });
    expect(r.body.toString()).toBe("hello");
  });

  it("turns an object without statusCode (or null) into its JSON", () => {
    expect(toHttpResponse({ a: [1, 2] }).body.toString()).toBe('{"a":[1,2]}');
    expect(toHttpResponse([1]).body.toString()).toBe("[1]");
    expect(toHttpResponse(undefined).body.toString()).toBe("null");
  });

  it("reads a statusCode that is undefined as none, as API Gateway does: the runtime's JSON leaves it out", () => {
    const r = toHttpResponse({ statusCode: undefined, body: "x" });
    expect(r.statusCode).toBe(200);
    expect(r.body.toString()).toBe('{"body":"x"}');
  });

  it("replies with the JSON the runtime already made rather than serializing the result again", () => {
    // a BigInt would make JSON.stringify throw: only the given JSON can have been used
    const r = toHttpResponse({ count: 1n }, '{"count":"1"}');
    expect(r.statusCode).toBe(200);
    expect(r.body.toString()).toBe('{"count":"1"}');
  });

  it("answers 500 for a malformed structured response", () => {
    for (const bad of [
      { statusCode: "200" },
      { statusCode: 200, body: { a: 1 } },
      { statusCode: 99 },
      // API Gateway takes only integer statuses from 100 to 599
      { statusCode: 600 },
      { statusCode: 200.5 },
      { statusCode: 200, cookies: "a=1" },
    ]) {
      const r = toHttpResponse(bad);
      expect(r.statusCode).toBe(500);
      expect(JSON.parse(r.body.toString())).toEqual({ message: "Internal Server Error" });
    }
  });
});
