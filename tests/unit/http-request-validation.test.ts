import { beforeAll, describe, expect, it } from "vitest";
import { config, requestBodyBytes, resetConfig } from "../../layers/chat/config.ts";
import { call, httpEvent } from "../helpers/lambda-events.ts";

// No services: every request here is rejected before the chat service (and its database) is touched.
beforeAll(() => {
  process.env.DATABASE_URL = "postgres://nobody@127.0.0.1:1/none";
  process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
  resetConfig();
});

const post = async (body: string | object | Buffer | undefined, headers: Record<string, string> = {}) => {
  const { handler } = await import("../../functions/messages-post.ts");
  return call(handler, "messages-post", httpEvent("POST", "/messages/post", { body, headers }));
};
const sid = "7b0c4a4e-1f7e-4c65-9a3e-2b1f3c4d5e6f";

describe("request parsing and validation (handlers called with v2 events)", () => {
  it("answers malformed JSON with 400 malformed_json in the problem+json shape", async () => {
    const res = await post("{not json", { "content-type": "application/json" });
    expect(res.statusCode).toBe(400);
    expect(res.headers["content-type"]).toBe("application/problem+json");
    expect(res.json).toMatchObject({ status: 400, code: "malformed_json", title: "Malformed JSON" });
    expect(res.json.request_id).toBe(res.headers["x-request-id"]);
    expect(res.json.type).toMatch(/^https:\/\//);
  });

  it("rejects unknown fields and wrong types with 400 validation_failed listing each path", async () => {
    const res = await post({ session_id: "nope", content: 5, extra: true });
    expect(res.statusCode).toBe(400);
    expect(res.json.code).toBe("validation_failed");
    const paths = res.json.errors.map((e: { path: string }) => e.path).sort();
    expect(paths).toEqual(expect.arrayContaining(["content", "session_id"]));
    expect(JSON.stringify(res.json.errors)).toContain("extra");
  });

  it("reports at most 20 errors, each path cut at 100 characters: a body of unknown keys gets a short answer", async () => {
    const body: Record<string, unknown> = { session_id: sid, content: "x", ["k".repeat(5000)]: 1 };
    for (let i = 0; i < 3000; i++) body[`unknown_${i}`] = i;
    const sent = JSON.stringify(body);
    const res = await post(sent, { "content-type": "application/json" });
    expect(res.statusCode).toBe(400);
    expect(res.json.code).toBe("validation_failed");
    expect(res.json.errors).toHaveLength(20);
    expect(res.json.errors[0].path).toBe(`${"k".repeat(100)}…`);
    expect(res.json.detail).toMatch(/; and 2981 more$/);
    expect((res.body ?? "").length).toBeLessThan(sent.length / 5);
  });

  it("rejects a __proto__ key as an unknown field instead of polluting the prototype", async () => {
    const res = await post(`{"session_id":"${sid}","content":"x","__proto__":{"polluted":true}}`, {
      "content-type": "application/json",
    });
    expect(res.statusCode).toBe(400);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("answers a non-JSON media type with 415 and a body over MAX_BODY_BYTES with 413", async () => {
    expect((await post("content=x", { "content-type": "application/x-www-form-urlencoded" })).json.code).toBe(
      "unsupported_media_type",
    );
    const big = await post({ session_id: sid, content: "x".repeat(requestBodyBytes(8000) + 1) });
    expect(big.statusCode).toBe(413);
    expect(big.json.code).toBe("payload_too_large");
  });

  it("answers invalid UTF-8 with 400 malformed_json", async () => {
    const res = await post(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), {
      "content-type": "application/json",
    });
    expect(res.statusCode).toBe(400);
    expect(res.json.code).toBe("malformed_json");
  });

  it("reads invalid UTF-8 inside a JSON string as malformed, not as replacement characters that would parse", async () => {
    // {"session_id":"…","content":"<0xff>"}: decoded leniently this is valid JSON and the post would go on
    const body = Buffer.concat([
      Buffer.from(`{"session_id":"${sid}","content":"`),
      Buffer.from([0xff]),
      Buffer.from('"}'),
    ]);
    const res = await post(body, { "content-type": "application/json", authorization: "Bearer abc" });
    expect([res.statusCode, res.json.code]).toEqual([400, "malformed_json"]);
  });

  it("decodes a base64-encoded body (isBase64Encoded) before parsing it", async () => {
    const event = httpEvent("POST", "/messages/post", { headers: { "content-type": "application/json" } });
    event.body = Buffer.from(JSON.stringify({ session_id: "nope", content: "x" })).toString("base64");
    event.isBase64Encoded = true;
    const { handler } = await import("../../functions/messages-post.ts");
    const res = await call(handler, "messages-post", event);
    expect([res.statusCode, res.json.code]).toEqual([400, "validation_failed"]);
    expect(res.json.errors.map((e: { path: string }) => e.path)).toEqual(["session_id"]);
  });

  it("takes a body of exactly MAX_BODY_BYTES and refuses one byte more with 413", async () => {
    const max = config().MAX_BODY_BYTES;
    const json = JSON.stringify({ session_id: sid, content: "hello" });
    const headers = { "content-type": "application/json", authorization: "Bearer abc" };
    // trailing whitespace is valid JSON: the body reaches the service (an unreachable database here)
    const exact = await post(json + " ".repeat(max - json.length), headers);
    expect([exact.statusCode, exact.json.code]).toEqual([503, "service_unavailable"]);
    const over = await post(json + " ".repeat(max - json.length + 1), headers);
    expect([over.statusCode, over.json.code]).toEqual([413, "payload_too_large"]);
  });

  it("takes any JSON media type: +json suffixes and any letter case", async () => {
    const body = JSON.stringify({ session_id: "nope", content: "x" });
    for (const type of ["application/merge-patch+json", "Application/JSON; charset=utf-8"]) {
      const res = await post(body, { "content-type": type });
      expect([res.statusCode, res.json.code], type).toEqual([400, "validation_failed"]);
    }
  });

  it("adds security headers to error responses", async () => {
    const res = await post("{", { "content-type": "application/json" });
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    // 180 days, subdomains included, not preloaded (a preload list entry is a decision for the domain's owner)
    expect(res.headers["strict-transport-security"]).toBe("max-age=15552000; includeSubDomains");
  });

  it("requires history limits of 1–200", async () => {
    const { handler } = await import("../../functions/session-messages.ts");
    const res = await call(
      handler,
      "session-messages",
      httpEvent("GET", `/sessions/${sid}/messages?limit=500`),
    );
    expect(res.statusCode).toBe(400);
    expect(res.json.errors[0].path).toBe("query.limit");
  });

  describe("the request schemas' bounds: the last value taken goes on (here to an unreachable database), one past it is a 400 at its path", () => {
    const mid = "0f2d7c1e-8a5b-4c3d-9e1f-2a3b4c5d6e7f";
    const auth = { authorization: "Bearer abc" };
    const send = async (name: string, method: string, path: string, body?: object) => {
      const { handler } = await import(`../../functions/${name}.ts`);
      return call(handler, name, httpEvent(method, path, { body, headers: auth }));
    };
    const create = (body: object) => send("sessions-create", "POST", "/sessions/create", body);
    const edit = (fields: object) =>
      send("messages-edit", "PUT", "/messages/edit", {
        session_id: sid,
        message_id: mid,
        content: "x",
        ...fields,
      });
    const history = (query: string) => send("session-messages", "GET", `/sessions/${sid}/messages?${query}`);
    type Answer = { statusCode?: number; json: { code: string; errors?: { path: string }[] } };
    const taken = (res: Answer) =>
      expect([res.statusCode, res.json.code]).toEqual([503, "service_unavailable"]);
    const refused = (res: Answer, path: string) => {
      expect([res.statusCode, res.json.code]).toEqual([400, "validation_failed"]);
      expect(res.json.errors?.map((e) => e.path)).toEqual([path]);
    };

    it("user_id: 1 to 256 characters", async () => {
      refused(await create({ user_id: "" }), "user_id");
      taken(await create({ user_id: "u" }));
      taken(await create({ user_id: "u".repeat(256) }));
      refused(await create({ user_id: "u".repeat(257) }), "user_id");
    });

    it("metadata: an object whose keys have at most 128 characters", async () => {
      taken(await create({ metadata: { ["k".repeat(128)]: 1 } }));
      const long = await create({ metadata: { ["k".repeat(129)]: 1 } });
      expect([long.statusCode, long.json.code]).toEqual([400, "validation_failed"]);
      expect(long.json.errors[0].path).toMatch(/^metadata/);
      refused(await create({ metadata: ["a"] }), "metadata");
    });

    // JSON Schema's maxLength (the OpenAPI document's) counts code points; an astral character is 2 UTF-16 units
    it("user_id and metadata keys count characters as the document does, in code points, not UTF-16 units", async () => {
      taken(await create({ user_id: "😀".repeat(256) }));
      refused(await create({ user_id: "😀".repeat(257) }), "user_id");
      taken(await create({ metadata: { ["😀".repeat(128)]: 1 } }));
      const long = await create({ metadata: { ["😀".repeat(129)]: 1 } });
      expect([long.statusCode, long.json.code]).toEqual([400, "validation_failed"]);
    });

    it("an edit's expected_version is at least 1 and regenerate a boolean", async () => {
      taken(await edit({ expected_version: 1, regenerate: true }));
      refused(await edit({ expected_version: 0 }), "expected_version");
      refused(await edit({ regenerate: "yes" }), "regenerate");
    });

    it("every id and the content are required", async () => {
      refused(await send("messages-post", "POST", "/messages/post", { session_id: sid }), "content");
      refused(
        await send("messages-edit", "PUT", "/messages/edit", { session_id: sid, content: "x" }),
        "message_id",
      );
      refused(await send("messages-delete", "DELETE", "/messages/delete", { session_id: sid }), "message_id");
    });

    it("ids are version-4 UUIDs: another version is refused, as the service never issues one", async () => {
      const v1 = "7b0c4a4e-1f7e-1c65-9a3e-2b1f3c4d5e6f";
      refused(
        await send("messages-post", "POST", "/messages/post", { session_id: v1, content: "x" }),
        "session_id",
      );
    });

    it("after_seq: at most 2^31 - 1, the largest seq Postgres stores (an integer column)", async () => {
      taken(await history("after_seq=2147483647"));
      refused(await history("after_seq=2147483648"), "query.after_seq");
    });
  });

  describe("DELETE /messages/delete: the ids from the query and the body together", () => {
    const mid = "0f2d7c1e-8a5b-4c3d-9e1f-2a3b4c5d6e7f";
    const del = async (query: string, body?: object) => {
      const { handler } = await import("../../functions/messages-delete.ts");
      const event = httpEvent("DELETE", `/messages/delete${query}`, {
        body,
        headers: { authorization: "Bearer abc" },
      });
      return call(handler, "messages-delete", event);
    };

    it("a field in both with different values is a 400 naming it, not the body's value taken silently", async () => {
      const res = await del(`?session_id=${sid}&message_id=${mid}`, { session_id: sid, message_id: sid });
      expect(res.statusCode).toBe(400);
      expect(res.json.errors).toEqual([
        { path: "query.message_id", message: "differs from message_id in the body" },
      ]);
    });

    it("ids in the query are not dropped for a body of {}: the request goes on (here to an unreachable database)", async () => {
      for (const [query, body] of [
        [`?session_id=${sid}&message_id=${mid}`, {}],
        [`?session_id=${sid}`, { message_id: mid }],
        [`?session_id=${sid.toUpperCase()}&message_id=${mid}`, { session_id: sid }],
      ] as const) {
        const res = await del(query, body);
        expect([res.statusCode, res.json.code], `${query} ${JSON.stringify(body)}`).toEqual([
          503,
          "service_unavailable",
        ]);
      }
    });

    it("an unknown query parameter is reported at query.<key>, with every other error", async () => {
      const alone = await del(`?session_id=${sid}&message_id=${mid}&x=1`);
      expect(alone.json.errors).toEqual([{ path: "query.x", message: "unknown field" }]);
      const mixed = await del(`?session_id=${sid}&x=1`, { message_id: "nope" });
      expect(mixed.json.errors).toEqual([
        { path: "query.x", message: "unknown field" },
        { path: "message_id", message: expect.any(String) },
      ]);
    });
  });

  it("reports Postgres being unreachable as 503 service_unavailable with Retry-After, never 500", async () => {
    const res = await post({ session_id: sid, content: "hello" }, { authorization: "Bearer abc" });
    expect(res.statusCode).toBe(503);
    expect(res.json.code).toBe("service_unavailable");
    expect(res.headers["retry-after"]).toBeDefined();
  });
});
