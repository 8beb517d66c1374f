import { readFileSync } from "node:fs";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { expect } from "vitest";
import { buildRouteTable } from "../../functions/http/route-table.ts";
import { functions } from "../../functions/manifest.ts";

/**
 * Validates responses against the committed docs/openapi.json with ajv (JSON Schema 2020-12, the dialect of
 * OpenAPI 3.1). The document itself is loaded as a schema resource, so `#/components/schemas/*` and any JSON
 * pointer into `paths` resolve as they do for an OpenAPI tool.
 */
export const OPENAPI_PATH = new URL("../../docs/openapi.json", import.meta.url);
export const DOC_ID = "https://chat-backend.example/openapi.json";

type Json = Record<string, unknown>;
export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, Json>>;
  components: { schemas: Record<string, Json>; responses?: Record<string, Json> };
  [k: string]: unknown;
}

export function loadOpenApiDocument(): OpenApiDocument {
  return JSON.parse(readFileSync(OPENAPI_PATH, "utf8")) as OpenApiDocument;
}

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

/**
 * An ajv instance holding the document. Component schemas carry a `$id` that is a JSON pointer
 * ("#/components/schemas/X", which 2020-12 forbids); it is dropped here so that refs resolve by pointer
 * against the document (openapi-contract.test.ts checks the schemas themselves separately).
 */
export function openApiAjv(doc: OpenApiDocument = loadOpenApiDocument()): Ajv2020 {
  const ajv = new Ajv2020({ strict: true, allErrors: true, validateFormats: true });
  addFormats(ajv);
  for (const k of [
    "openapi",
    "info",
    "servers",
    "paths",
    "components",
    "security",
    "tags",
    "x-default-route",
  ])
    ajv.addKeyword(k);
  const schemas = Object.fromEntries(
    Object.entries(doc.components.schemas).map(([name, s]) => {
      const { $id: _id, ...rest } = s;
      return [name, rest];
    }),
  );
  ajv.addSchema({ ...doc, $id: DOC_ID, components: { ...doc.components, schemas } });
  return ajv;
}

let shared: { ajv: Ajv2020; doc: OpenApiDocument; validators: Map<string, ValidateFunction> } | undefined;
function state() {
  if (!shared) {
    const doc = loadOpenApiDocument();
    shared = { doc, ajv: openApiAjv(doc), validators: new Map() };
  }
  return shared;
}

const pointer = (...parts: string[]) =>
  parts.map((p) => encodeURIComponent(p.replaceAll("~", "~0").replaceAll("/", "~1"))).join("/");

function validatorFor(ref: string): ValidateFunction {
  const s = state();
  let v = s.validators.get(ref);
  if (!v) {
    v = s.ajv.compile({ $ref: `${DOC_ID}#/${ref}` });
    s.validators.set(ref, v);
  }
  return v;
}

/** Validates a value against the schema at `#/components/schemas/<name>`; returns ajv's errors. */
export function componentErrors(name: string, value: unknown) {
  const v = validatorFor(pointer("components", "schemas", name));
  return v(value) ? null : v.errors;
}

/** Headers the contract names; when a response carries one, the operation must document it at that status. */
const CONTRACT_HEADERS = [
  "x-request-id",
  "x-cache",
  "idempotent-replayed",
  "location",
  "etag",
  "www-authenticate",
  "allow",
  "retry-after",
  "ratelimit",
  "ratelimit-policy",
];

type ResponseObject = { content?: Record<string, unknown>; headers?: Record<string, unknown> };

/**
 * The documented response for a status: of the operation `method pathTemplate`, or, with no template, of the
 * `$default` route (x-default-route, whose responses are $refs to components.responses). With the JSON pointer of
 * where it is, to compile its schemas.
 */
function documentedResponse(
  method: string,
  pathTemplate: string | undefined,
  status: number,
): { response: ResponseObject | undefined; at: string[]; documented: string[] } {
  const { doc } = state();
  if (pathTemplate === undefined) {
    const fallback = (doc["x-default-route"] as { responses: Record<string, { $ref: string }> }).responses;
    const name = fallback[String(status)]?.$ref.split("/").pop() ?? "";
    return {
      response: doc.components.responses?.[name] as ResponseObject | undefined,
      at: ["components", "responses", name],
      documented: Object.keys(fallback),
    };
  }
  const op = doc.paths[pathTemplate]?.[method.toLowerCase()] as
    | { responses: Record<string, ResponseObject & { $ref?: string }> }
    | undefined;
  expect(op, `${method} ${pathTemplate} is not in docs/openapi.json`).toBeDefined();
  const response = op?.responses[String(status)];
  // a component response (API Gateway's own answers)
  const name = response?.$ref?.split("/").pop();
  return {
    response: name ? (doc.components.responses?.[name] as ResponseObject | undefined) : response,
    at: name
      ? ["components", "responses", name]
      : ["paths", pathTemplate, method.toLowerCase(), "responses", String(status)],
    documented: Object.keys(op?.responses ?? {}),
  };
}

/**
 * The problem codes the document lists for this answer (its schema's `code` enum): of the operation the request
 * is routed to, else of the `$default` route. Undefined when the status is not documented there as a problem.
 */
export function documentedProblemCodes(method: string, path: string, status: number): string[] | undefined {
  const { response } = documentedResponse(method, routeTemplateOf(method, path), status);
  const schema = response?.content?.["application/problem+json"] as
    | { schema?: { allOf?: { properties?: { code?: { enum?: string[] } } }[] } }
    | undefined;
  return schema?.schema?.allOf?.find((s) => s.properties?.code)?.properties?.code?.enum;
}

/**
 * The response is one the document describes for `method pathTemplate`: the status is listed, the media
 * type is listed, the body validates against its schema (or there is no body when none is documented), and
 * contract headers it carries are documented.
 */
export function assertMatchesOpenApi(
  method: string,
  pathTemplate: string | undefined,
  status: number,
  headers: Headers | Record<string, string | undefined>,
  body: unknown,
): void {
  const where = `${method} ${pathTemplate ?? "($default route)"} → ${status}`;
  const { response, at, documented } = documentedResponse(method, pathTemplate, status);
  expect(
    response,
    `${where}: status ${status} is not documented (documented: ${documented.join(", ")})`,
  ).toBeDefined();
  if (!response) return;
  const header = (name: string) =>
    headers instanceof Headers ? headers.get(name) : (headers[name] ?? headers[name.toLowerCase()]);
  const contentType = header("content-type")?.split(";")[0]?.trim().toLowerCase();
  if (!response.content) {
    expect(body ?? undefined, `${where}: documented without a body, but one came`).toBeUndefined();
  } else {
    const types = Object.keys(response.content);
    expect(types, `${where}: content-type ${contentType} is not documented`).toContain(contentType);
    const v = validatorFor(pointer(...at, "content", contentType ?? "", "schema"));
    const ok = v(body);
    expect(
      ok,
      `${where}: body does not match the document: ${JSON.stringify(v.errors, null, 1)}\n${JSON.stringify(body)}`,
    ).toBe(true);
  }
  for (const name of CONTRACT_HEADERS) {
    if (header(name) == null) continue;
    const documented = Object.keys(response.headers ?? {}).map((h) => h.toLowerCase());
    expect(documented, `${where}: header ${name} is sent but not documented`).toContain(name);
  }
}

const routes = buildRouteTable(functions);

/**
 * The manifest route a concrete method + path belongs to, e.g. GET /sessions/123 → /sessions/{session_id}, as the
 * runner and API Gateway route it (a `{param}` takes one non-empty segment; a literal segment wins).
 */
export function routeTemplateOf(method: string, path: string): string | undefined {
  const match = routes.match(method, path.split("?")[0] ?? path);
  return match.kind === "match" ? match.fn.route.path : undefined;
}

/**
 * For a response the runner gave: a routed request is checked against its operation; a request no route takes
 * against the `$default` route's responses (404 route_not_found, 405 method_not_allowed).
 */
export function assertResponseMatchesOpenApi(
  method: string,
  path: string,
  res: { status: number; headers: Headers; body: unknown },
): void {
  assertMatchesOpenApi(method, routeTemplateOf(method, path), res.status, res.headers, res.body);
}
