import { describe, expect, it } from "vitest";
import { checkResponse, LAMBDA_RESPONSE_LIMIT, toResponseJson } from "../../local/lambda-response.ts";

const stringifyError = {
  ok: false,
  error: {
    errorType: "Runtime.JSONStringifyError",
    errorMessage: "Unable to stringify response body",
    trace: [],
  },
};
const tooLarge = {
  ok: false,
  error: {
    errorType: "Function.ResponseSizeTooLarge",
    errorMessage: "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
    trace: [],
  },
};

describe("checkResponse (the Node.js runtime's serialization and Lambda's response limit)", () => {
  it("fails a small HTTP result that JSON.stringify rejects anywhere, as Runtime.JSONStringifyError", () => {
    const cyclic: Record<string, unknown> = { statusCode: 200, body: "ok" };
    cyclic.self = cyclic;
    for (const result of [
      { statusCode: 200, body: "ok", headers: { "x-count": 1n } },
      { statusCode: 200, body: "ok", cookies: [2n] },
      cyclic,
      { count: 1n }, // not an HTTP result
    ])
      expect(checkResponse(result)).toEqual(stringifyError);
  });

  it("fails a result whose JSON exceeds 6 MB in fields other than a small body", () => {
    const big = "x".repeat(LAMBDA_RESPONSE_LIMIT);
    expect(checkResponse({ statusCode: 200, body: "ok", headers: { "x-big": big } })).toEqual(tooLarge);
    expect(checkResponse({ statusCode: 200, body: "ok", cookies: [big] })).toEqual(tooLarge);
    expect(checkResponse({ items: [big] })).toEqual(tooLarge);
  });

  it("measures a large body by its JSON, escapes included, in UTF-8 bytes", () => {
    // each quote is 2 characters of the body (\") and 4 bytes of the result's JSON (\\\"): ≈ 6.0 MB and 6.4 MB
    const quotes = (n: number) => ({ statusCode: 200, body: JSON.stringify('"'.repeat(n)) });
    expect(checkResponse(quotes(1_500_000)).ok).toBe(true);
    expect(checkResponse(quotes(1_600_000))).toEqual(tooLarge);
    // "é" is 1 UTF-16 unit but 2 bytes
    expect(checkResponse({ statusCode: 200, body: "é".repeat(3_100_000) }).ok).toBe(true);
    expect(checkResponse({ statusCode: 200, body: "é".repeat(3_200_000) })).toEqual(tooLarge);
  });

  it("serializes a small HTTP result's body no more than needed, and hands back any JSON it made", () => {
    expect(checkResponse({ statusCode: 200, body: "ok" })).toEqual({ ok: true, json: undefined });
    expect(checkResponse({ a: [1, 2] })).toEqual({ ok: true, json: '{"a":[1,2]}' });
    expect(checkResponse("text")).toEqual({ ok: true, json: '"text"' });
    expect(checkResponse(undefined)).toEqual({ ok: true, json: "null" });
  });

  it("goes by toJSON as JSON.stringify does", () => {
    const result = { statusCode: 200, body: "ok", toJSON: () => ({ count: 1n }) };
    expect(checkResponse(result)).toEqual(stringifyError);
  });

  it("goes by a toJSON inherited from the prototype, which a copy of the result's own fields would lose", () => {
    const proto = { toJSON: () => ({ big: "x".repeat(7_000_000) }) };
    const result = Object.assign(Object.create(proto), { statusCode: 200, body: "ok" });
    expect(checkResponse(result)).toEqual(tooLarge);
  });

  it("counts a control character in the body as the 6 bytes of its JSON escape", () => {
    // 1.1 million characters, 6.6 MB once escaped as \u0001
    expect(checkResponse({ statusCode: 200, body: "\u0001".repeat(1_100_000) })).toEqual(tooLarge);
  });
});

describe("toResponseJson", () => {
  it("serializes as the runtime does: undefined as null", () => {
    expect(toResponseJson(undefined)).toBe("null");
    expect(toResponseJson({ a: undefined, b: 1 })).toBe('{"b":1}');
  });
});
