import { readFileSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { idempotencyRequest } from "../../functions/http/idempotency-header.ts";
import { buildOpenApiDocument } from "../../functions/http/openapi-document.ts";
import { httpFunctions } from "../../functions/manifest.ts";
import {
  MAY_HAVE_BEEN_ERASED,
  MAY_HAVE_BEEN_MADE,
  UNAVAILABLE_RETRY_AFTER_SECONDS,
} from "../../layers/chat/chat/errors.ts";
import {
  assertMatchesOpenApi,
  componentErrors,
  documentedProblemCodes,
  loadOpenApiDocument,
  OPENAPI_PATH,
  openApiAjv,
  routeTemplateOf,
} from "../helpers/openapi-validator.ts";

/**
 * docs/openapi.json against the code: it documents every route of the manifest, it is exactly what the
 * generator produces now (so it cannot go stale), its schemas are valid JSON Schema 2020-12, and the
 * validator the other e2e files run every response through really rejects what the document does not allow.
 */
const doc = loadOpenApiDocument();
type Op = {
  operationId: string;
  parameters: { name: string; in: string; schema?: Record<string, unknown> }[];
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
};
const op = (method: string, path: string) => doc.paths[path]?.[method.toLowerCase()] as Op | undefined;

const SESSION_ID = "0b0e9a61-4a8e-4c3f-9d0b-6b1f0f6c7a11";
const MESSAGE = {
  message_id: "6f1c1e0e-2d7a-4d7e-8a55-2c1f6b7e9d01",
  session_id: SESSION_ID,
  seq: 2,
  role: "user",
  content: "hi",
  version: 1,
  created_at: "2026-01-02T03:04:05.678Z",
  edited_at: null,
  reply_to: null,
};

describe("docs/openapi.json documents the manifest", () => {
  it("has an operation for every HTTP route of the manifest, named by operationId", () => {
    for (const fn of httpFunctions) {
      const o = op(fn.route.method, fn.route.path);
      expect(o, `${fn.route.method} ${fn.route.path} (${fn.name}) is not documented`).toBeDefined();
      expect(o?.operationId).toBe(fn.name);
    }
  });

  it("documents no operation that the manifest does not route", () => {
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const routed = httpFunctions.map((f) => `${f.route.method} ${f.route.path}`);
    expect(documented.sort()).toEqual(routed.sort());
  });

  it("documents each path parameter of a route as a required path parameter", () => {
    for (const fn of httpFunctions) {
      const names = [...fn.route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      const params = op(fn.route.method, fn.route.path)?.parameters ?? [];
      for (const name of names)
        expect(params, `${fn.name}: path parameter ${name}`).toContainEqual(
          expect.objectContaining({ name, in: "path", required: true }),
        );
    }
  });

  it("documents that DELETE /messages/delete also takes session_id and message_id as query parameters", () => {
    const params = op("DELETE", "/messages/delete")?.parameters ?? [];
    for (const name of ["session_id", "message_id"])
      expect(params).toContainEqual(expect.objectContaining({ name, in: "query" }));
  });

  it("documents 409 (session_busy) for every operation that changes a session under its row lock", () => {
    for (const [method, path] of [
      ["POST", "/messages/post"],
      ["PUT", "/messages/edit"],
      ["DELETE", "/messages/delete"],
    ] as const) {
      expect(Object.keys(op(method, path)?.responses ?? {}), `${method} ${path}`).toContain("409");
    }
  });

  it("documents GET /health 503 with the Health body the handler sends (or API Gateway's own), not a Problem", () => {
    const r = op("GET", "/health")?.responses["503"];
    expect(r?.content).toEqual({
      "application/json": {
        schema: {
          anyOf: [{ $ref: "#/components/schemas/Health" }, { $ref: "#/components/schemas/GatewayError" }],
        },
      },
    });
  });

  it("a 503 says what its detail can say: nothing changed, or a change that may have been made, and what a retry gets", () => {
    const said = (method: string, path: string) =>
      (op(method, path)?.responses["503"] as { description?: string } | undefined)?.description ?? "";
    for (const [method, path] of [
      ["GET", "/sessions/{session_id}"],
      ["GET", "/sessions/{session_id}/messages"],
      ["GET", "/sessions/{session_id}/suggestions"],
    ] as const) {
      expect(said(method, path), `${method} ${path}`).toMatch(/nothing was changed/);
      expect(said(method, path), `${method} ${path}`).not.toMatch(/may have been/);
    }
    // the words the service's 503 says (layers/chat/chat/chat-service.ts), which a client matches in `detail`
    for (const [method, path] of [
      ["POST", "/sessions/create"],
      ["POST", "/messages/post"],
      ["PUT", "/messages/edit"],
      ["DELETE", "/messages/delete"],
    ] as const) {
      expect(said(method, path), `${method} ${path}`).toContain(`"${MAY_HAVE_BEEN_MADE}"`);
      expect(said(method, path), `${method} ${path}`).toMatch(/same Idempotency-Key/);
    }
    const erase = said("DELETE", "/sessions/{session_id}");
    expect(erase).toContain(`"${MAY_HAVE_BEEN_ERASED}"`);
    expect(erase).toMatch(/204.*401/);
    const { min, max } = UNAVAILABLE_RETRY_AFTER_SECONDS;
    for (const fn of httpFunctions.filter((f) => f.name !== "health" && f.name !== "openapi"))
      if (said(fn.route.method, fn.route.path).startsWith("service_unavailable"))
        expect(said(fn.route.method, fn.route.path), fn.name).toContain(`Retry-After (${min}–${max} s)`);
  });
});

describe("docs/openapi.json lists per operation only the problem codes it answers", () => {
  const codes = (method: string, path: string, status: number) =>
    documentedProblemCodes(method, path.replace("{session_id}", SESSION_ID), status);

  it("409 of POST /sessions/create is request_in_progress alone; DELETE /sessions/{id}'s session_busy alone", () => {
    expect(codes("POST", "/sessions/create", 409)).toEqual(["request_in_progress"]);
    expect(codes("DELETE", "/sessions/{session_id}", 409)).toEqual(["session_busy"]);
    expect(codes("PUT", "/messages/edit", 409)?.sort()).toEqual(
      ["message_not_editable", "session_busy", "session_full", "version_conflict"].sort(),
    );
  });

  it("404 of the session reads is session_not_found alone (no message_not_found, no route_not_found)", () => {
    for (const path of [
      "/sessions/{session_id}",
      "/sessions/{session_id}/suggestions",
      "/sessions/{session_id}/messages",
    ])
      expect(codes("GET", path, 404), path).toEqual(["session_not_found"]);
    expect(codes("DELETE", "/messages/delete", 404)?.sort()).toEqual([
      "message_not_found",
      "session_not_found",
    ]);
  });

  it("429 rate_limited on every operation but GET /health and GET /openapi.json, which are never rate limited", () => {
    for (const fn of httpFunctions) {
      const exempt = fn.name === "health" || fn.name === "openapi";
      expect(codes(fn.route.method, fn.route.path, 429), fn.name).toEqual(
        exempt ? undefined : ["rate_limited"],
      );
    }
  });

  it("no operation lists a code only the $default route answers; that route's 404 and 405 are documented", () => {
    for (const fn of httpFunctions)
      for (const status of [404, 405])
        expect(codes(fn.route.method, fn.route.path, status) ?? [], fn.name).not.toContain(
          status === 404 ? "route_not_found" : "method_not_allowed",
        );
    expect(documentedProblemCodes("GET", "/nope", 404)).toEqual(["route_not_found"]);
    expect(documentedProblemCodes("GET", "/messages/post", 405)).toEqual(["method_not_allowed"]);
    const allow = doc.components.responses?.MethodNotAllowed?.headers as object | undefined;
    expect(Object.keys(allow ?? {})).toContain("Allow");
  });

  it("the response validator rejects a problem code the operation does not list, at a status it does", () => {
    const problem = (code: string, status: number) => ({
      type: "t",
      title: "t",
      status,
      detail: "d",
      code,
      request_id: "r",
    });
    const headers = new Headers({ "content-type": "application/problem+json" });
    expect(() =>
      assertMatchesOpenApi("GET", "/sessions/{session_id}", 404, headers, problem("session_not_found", 404)),
    ).not.toThrow();
    for (const [method, path, status, code] of [
      ["GET", "/sessions/{session_id}", 404, "message_not_found"],
      ["GET", "/sessions/{session_id}/suggestions", 404, "route_not_found"],
      ["POST", "/sessions/create", 409, "session_full"],
      ["DELETE", "/sessions/{session_id}", 409, "version_conflict"],
    ] as const)
      expect(() => assertMatchesOpenApi(method, path, status, headers, problem(code, status)), code).toThrow(
        /does not match the document/,
      );
    // no operation: the $default route's responses
    expect(() =>
      assertMatchesOpenApi("GET", undefined, 405, headers, problem("method_not_allowed", 405)),
    ).not.toThrow();
    expect(() =>
      assertMatchesOpenApi("GET", undefined, 405, headers, problem("route_not_found", 405)),
    ).toThrow(/does not match the document/);
  });
});

describe("docs/openapi.json states what the server takes", () => {
  it("documents the Location of POST /sessions/create's 201", () => {
    const created = op("POST", "/sessions/create")?.responses["201"] as { headers?: Record<string, unknown> };
    expect(Object.keys(created.headers ?? {})).toContain("location");
  });

  it("a request body is required where the handler needs one: not for a create (none makes an anonymous session) nor a delete (ids may come as query parameters)", () => {
    const required = (method: string, path: string) =>
      (op(method, path)?.requestBody as { required?: boolean } | undefined)?.required;
    expect(required("POST", "/sessions/create")).toBe(false);
    expect(required("DELETE", "/messages/delete")).toBe(false);
    expect(required("POST", "/messages/post")).toBe(true);
    expect(required("PUT", "/messages/edit")).toBe(true);
  });

  it("message content: 1 to 8,000 code points, as MAX_CONTENT_CHARS's default counts them", () => {
    for (const [method, path] of [
      ["POST", "/messages/post"],
      ["PUT", "/messages/edit"],
    ] as const) {
      const body = op(method, path)?.requestBody?.content["application/json"]?.schema as {
        properties: Record<string, object>;
      };
      expect(body.properties.content, path).toMatchObject({ type: "string", minLength: 1, maxLength: 8000 });
    }
  });

  it("Idempotency-Key: the schema takes exactly the keys the server takes (visible ASCII, length bounds)", () => {
    const ajv = new Ajv2020({ strict: true });
    for (const [path, minLength] of [
      ["/messages/post", 1],
      ["/sessions/create", 16],
    ] as const) {
      const param = op("POST", path)?.parameters.find((p) => p.name === "Idempotency-Key");
      expect(param?.schema).toMatchObject({ pattern: expect.any(String), minLength, maxLength: 255 });
      const valid = ajv.compile(param?.schema as object);
      const accepted = (key: string) => {
        try {
          idempotencyRequest({ "idempotency-key": key }, "scope", {}, minLength);
          return true;
        } catch {
          return false;
        }
      };
      const ascii = fc.integer({ min: 0x1f, max: 0x7f }).map((c) => String.fromCharCode(c));
      const key = fc.oneof(
        fc.string({ unit: ascii, maxLength: 300 }),
        fc.string({ unit: ascii, minLength: 250, maxLength: 260 }),
        fc.string({ unit: "binary", maxLength: 40 }),
        fc.constantFrom(
          "",
          " ",
          "a b",
          "ключ",
          "k".repeat(255),
          "k".repeat(256),
          "k".repeat(15),
          "\t",
          "x\u007f",
        ),
      );
      fc.assert(
        fc.property(key, (k) => valid(k) === accepted(k)),
        { numRuns: 2000 },
      );
    }
  });
});

describe("docs/openapi.json declares what every answer carries", () => {
  type Response = {
    $ref?: string;
    description?: string;
    headers?: Record<string, unknown>;
    content?: Record<string, unknown>;
  };
  const resolve = (r: Response) =>
    r.$ref ? (doc.components.responses?.[r.$ref.split("/").pop() ?? ""] as Response) : r;
  const everyResponse = () => [
    ...httpFunctions.flatMap((fn) =>
      Object.entries(op(fn.route.method, fn.route.path)?.responses ?? {}).map(
        ([status, r]) => [fn.name, status, resolve(r as Response)] as const,
      ),
    ),
    ...Object.entries((doc["x-default-route"] as { responses: Record<string, Response> }).responses).map(
      ([status, r]) => ["route-not-found", status, resolve(r)] as const,
    ),
  ];
  const headerNames = (r: Response) => Object.keys(r.headers ?? {}).map((h) => h.toLowerCase());

  it("x-request-id on every response, and RateLimit and RateLimit-Policy on every one the limiter sees", () => {
    for (const [name, status, r] of everyResponse()) {
      expect(headerNames(r), `${name} ${status}`).toContain("x-request-id");
      // what only API Gateway answers never reached the limiter
      const gatewayOnly = r.description?.startsWith("API Gateway:");
      const limited = !["health", "openapi"].includes(name) && !gatewayOnly;
      for (const h of ["ratelimit", "ratelimit-policy"])
        expect(headerNames(r).includes(h), `${name} ${status} ${h}`).toBe(limited);
    }
  });

  it("API Gateway's own {message} answers (413, 429, 500, 503) on every operation and the $default route", () => {
    for (const fn of [...httpFunctions.map((f) => f.name), "route-not-found"]) {
      const statuses = everyResponse()
        .filter(
          ([name, , r]) =>
            name === fn && JSON.stringify(r.content?.["application/json"] ?? {}).includes("GatewayError"),
        )
        .map(([, status]) => status);
      expect(statuses, fn).toEqual(["413", "429", "500", "503"]);
    }
    expect(componentErrors("GatewayError", { message: "Too Many Requests" })).toBeNull();
    expect(componentErrors("GatewayError", { code: "rate_limited" })).not.toBeNull();
    // GET /health's own 503 body stays valid beside API Gateway's
    const health503 = op("GET", "/health")?.responses["503"]?.content?.["application/json"]?.schema;
    expect(health503).toEqual({
      anyOf: [{ $ref: "#/components/schemas/Health" }, { $ref: "#/components/schemas/GatewayError" }],
    });
  });
});

describe("docs/openapi.json is current", () => {
  it("is byte for byte what buildOpenApiDocument() generates now (run `node scripts/write-openapi.ts`)", () => {
    const committed = readFileSync(OPENAPI_PATH, "utf8");
    expect(committed).toBe(`${JSON.stringify(buildOpenApiDocument(), null, 2)}\n`);
  });

  it("is OpenAPI 3.1 with bearer auth on the session-scoped operations only", () => {
    expect(doc.openapi).toBe("3.1.0");
    for (const fn of httpFunctions) {
      const o = op(fn.route.method, fn.route.path) as Op & { security: unknown[] };
      const sessionScoped = fn.route.path.includes("{session_id}") || fn.route.path.startsWith("/messages/");
      expect(o.security, fn.name).toEqual(sessionScoped ? [{ sessionToken: [] }] : []);
    }
  });
});

describe("docs/openapi.json schemas", () => {
  it("every component schema is a valid JSON Schema 2020-12 schema", () => {
    const ajv = new Ajv2020({ strict: false });
    const invalid = Object.entries(doc.components.schemas)
      .filter(([, schema]) => !ajv.validateSchema(schema))
      .map(([name]) => `${name}: ${ajv.errorsText(ajv.errors)}`);
    expect(invalid).toEqual([]);
  });

  it("every request and response schema compiles and every $ref resolves", () => {
    const ajv = openApiAjv(doc);
    let compiled = 0;
    for (const [name, r] of Object.entries(doc.components.responses ?? {})) {
      for (const type of Object.keys((r.content ?? {}) as object)) {
        const pointer = `components/responses/${name}/content/${type.replace("/", "~1")}/schema`;
        expect(() =>
          ajv.compile({ $ref: `https://chat-backend.example/openapi.json#/${pointer}` }),
        ).not.toThrow();
        compiled++;
      }
    }
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, o] of Object.entries(ops) as [string, Op][]) {
        const bodies = [
          ...Object.entries(o.requestBody?.content ?? {}).map(([type]) => ["requestBody", "content", type]),
          ...Object.entries(o.responses).flatMap(([status, r]) =>
            Object.keys(r.content ?? {}).map((type) => ["responses", status, "content", type]),
          ),
        ];
        for (const parts of bodies) {
          const pointer = ["paths", path, method, ...parts, "schema"]
            .map((p) => encodeURIComponent(p.replaceAll("~", "~0").replaceAll("/", "~1")))
            .join("/");
          expect(() =>
            ajv.compile({ $ref: `https://chat-backend.example/openapi.json#/${pointer}` }),
          ).not.toThrow();
          compiled++;
        }
      }
    }
    expect(compiled).toBeGreaterThan(30);
  });

  it("request bodies are strict objects, as the handlers are (unknown fields rejected)", () => {
    const ajv = openApiAjv(doc);
    const schemaOf = (path: string, method: string) =>
      ajv.compile({
        $ref: `https://chat-backend.example/openapi.json#/paths/${encodeURIComponent(path.replaceAll("/", "~1"))}/${method}/requestBody/content/application~1json/schema`,
      });
    const post = schemaOf("/messages/post", "post");
    expect(post({ session_id: SESSION_ID, content: "hi" })).toBe(true);
    expect(post({ session_id: SESSION_ID, content: "hi", extra: 1 })).toBe(false);
    expect(post({ session_id: "not-a-uuid", content: "hi" })).toBe(false);
    const create = schemaOf("/sessions/create", "post");
    expect(create({})).toBe(true);
    expect(create({ user_id: "u", metadata: { a: 1 } })).toBe(true);
    expect(create({ admin: true })).toBe(false);
  });
});

describe("the response validator the e2e tests use", () => {
  const headers = new Headers({ "content-type": "application/json", "x-request-id": "r1" });

  it("accepts a response the document describes", () => {
    expect(() =>
      assertMatchesOpenApi("GET", "/sessions/{session_id}/messages", 200, headers, {
        messages: [MESSAGE],
        next_after_seq: null,
      }),
    ).not.toThrow();
    expect(() =>
      assertMatchesOpenApi(
        "DELETE",
        "/sessions/{session_id}",
        204,
        new Headers({ "x-request-id": "r" }),
        undefined,
      ),
    ).not.toThrow();
  });

  it("rejects an unknown field, a wrong type, a non-UTC time and a non-UUID id", () => {
    const page = (m: Record<string, unknown>) => ({ messages: [m], next_after_seq: null });
    for (const bad of [
      page({ ...MESSAGE, extra: true }),
      page({ ...MESSAGE, seq: "2" }),
      page({ ...MESSAGE, created_at: "2026-01-02T03:04:05+02:00" }),
      page({ ...MESSAGE, message_id: "42" }),
      { messages: [MESSAGE] },
    ]) {
      expect(() => assertMatchesOpenApi("GET", "/sessions/{session_id}/messages", 200, headers, bad)).toThrow(
        /does not match the document/,
      );
    }
  });

  it("rejects an undocumented status, an undocumented media type and a body where none is documented", () => {
    expect(() => assertMatchesOpenApi("GET", "/sessions/{session_id}", 418, headers, {})).toThrow(
      /not documented/,
    );
    expect(() =>
      assertMatchesOpenApi("GET", "/sessions/{session_id}", 404, headers, {
        type: "t",
        title: "t",
        status: 404,
        detail: "d",
        code: "session_not_found",
        request_id: "r",
      }),
    ).toThrow(/content-type application\/json is not documented/);
    expect(() => assertMatchesOpenApi("DELETE", "/sessions/{session_id}", 204, headers, { a: 1 })).toThrow(
      /without a body/,
    );
    expect(() => assertMatchesOpenApi("PATCH", "/sessions/{session_id}", 200, headers, {})).toThrow(
      /not in docs\/openapi.json/,
    );
  });

  it("rejects a contract header the operation does not document", () => {
    expect(() =>
      assertMatchesOpenApi(
        "GET",
        "/sessions/{session_id}",
        200,
        new Headers({ "content-type": "application/json", "x-cache": "hit" }),
        {
          session_id: SESSION_ID,
          user_id: null,
          metadata: {},
          created_at: MESSAGE.created_at,
          updated_at: MESSAGE.created_at,
          last_seq: 1,
          message_count: 1,
        },
      ),
    ).toThrow(/x-cache is sent but not documented/);
  });

  it("maps concrete paths to their route template, and Problem bodies validate as Problem", () => {
    expect(routeTemplateOf("GET", `/sessions/${SESSION_ID}/messages?limit=2`)).toBe(
      "/sessions/{session_id}/messages",
    );
    expect(routeTemplateOf("DELETE", "/messages/delete?session_id=x")).toBe("/messages/delete");
    expect(routeTemplateOf("PATCH", "/messages/delete")).toBeUndefined();
    expect(componentErrors("Problem", { type: "t" })).not.toBeNull();
  });
});
