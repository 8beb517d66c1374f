import { globalRegistry, looseObject, toJSONSchema, ZodMiniObject, type ZodMiniType } from "zod/mini";
import { httpFunctions } from "../manifest.ts";
import { CREATE_KEY_MIN_LENGTH } from "./idempotency-header.ts";
import { statusOf } from "./problem.ts";
import * as s from "./schemas.ts";

/**
 * OpenAPI 3.1, generated from the manifest's routes and the same zod schemas the handlers validate with.
 * `npm run docs` writes it to docs/openapi.json, which GET /openapi.json serves (functions/openapi.ts).
 */
interface Operation {
  summary?: string;
  body?: ZodMiniType;
  query?: ZodMiniObject;
  /** The body's fields may come as query parameters instead (DELETE /messages/delete). */
  bodyAsQuery?: boolean;
  auth: boolean;
  idempotent?: boolean;
  /** The shortest Idempotency-Key the operation takes (default 1). */
  idempotencyKeyMinLength?: number;
  ifMatch?: boolean;
  ok: { status: number; schema?: ZodMiniType; headers?: string[] };
  errors: number[];
  /** Error statuses answered with a JSON body of their own instead of problem+json (GET /health's 503). */
  errorBodies?: Record<number, ZodMiniType>;
}

const SESSION_ERRORS = [400, 401, 404, 429, 503];

/** Headers an error response carries (functions/http/http-handler.ts, rate-limit.ts). */
const ERROR_HEADERS: Record<number, string[]> = {
  401: ["WWW-Authenticate"],
  429: ["Retry-After", "RateLimit", "RateLimit-Policy"],
  503: ["Retry-After"],
};
const headersOf = (names: string[]) =>
  Object.fromEntries(names.map((h) => [h, { schema: { type: "string" } }]));

const operations: Record<string, Operation> = {
  "sessions-create": {
    body: s.createSessionBody,
    auth: false,
    idempotent: true,
    idempotencyKeyMinLength: CREATE_KEY_MIN_LENGTH,
    ok: { status: 201, schema: s.createSessionResponse },
    errors: [400, 409, 413, 415, 422, 429, 503],
  },
  "session-get": { auth: true, ok: { status: 200, schema: s.sessionSchema }, errors: SESSION_ERRORS },
  "session-erase": { auth: true, ok: { status: 204 }, errors: [...SESSION_ERRORS, 409] },
  "session-messages": {
    auth: true,
    query: s.historyQuery,
    ok: { status: 200, schema: s.historyResponse, headers: ["x-cache"] },
    errors: SESSION_ERRORS,
  },
  "session-suggestions": {
    auth: true,
    ok: { status: 200, schema: s.suggestionsResponse },
    errors: SESSION_ERRORS,
  },
  "messages-post": {
    body: s.postMessageBody,
    auth: true,
    idempotent: true,
    ok: { status: 201, schema: s.postMessageResponse },
    errors: [...SESSION_ERRORS, 409, 413, 415, 422],
  },
  "messages-edit": {
    body: s.editMessageBody,
    auth: true,
    ifMatch: true,
    ok: { status: 200, schema: s.editMessageResponse, headers: ["etag"] },
    errors: [...SESSION_ERRORS, 409, 412, 413, 415],
  },
  "messages-delete": {
    body: s.deleteMessageBody,
    auth: true,
    ok: { status: 200, schema: s.deleteMessageResponse },
    bodyAsQuery: true,
    errors: [...SESSION_ERRORS, 409, 413, 415],
  },
  health: {
    auth: false,
    ok: { status: 200, schema: s.healthResponse },
    errors: [503],
    errorBodies: { 503: s.healthResponse },
  },
  openapi: { auth: false, ok: { status: 200, schema: looseObject({}) }, errors: [] },
};

/**
 * A named schema becomes a $ref to its component; an unnamed one is inlined. A query parameter shows its parsed
 * value's schema ("output"): its text form is the parameter's serialization, an integer's being its decimal digits.
 */
function schemaOf(schema: ZodMiniType, io: "input" | "output" = "input"): Record<string, unknown> {
  const id = globalRegistry.get(schema)?.id;
  if (id) return { $ref: ref(id) };
  return toJSONSchema(schema, {
    target: "draft-2020-12",
    io,
    unrepresentable: "any",
    metadata: globalRegistry,
  }) as Record<string, unknown>;
}
const ref = (id: string) => `#/components/schemas/${id}`;

/** OpenAPI 3.1 embeds plain 2020-12 schemas: no dialect, and no zod `$id` (a fragment $id is invalid there). */
function strip(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _s, $id: _i, ...rest } = schema;
  return rest;
}

export function buildOpenApiDocument(version = "0.1.0") {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const fn of httpFunctions) {
    const op = operations[fn.name];
    if (!op) throw new Error(`no OpenAPI operation for ${fn.name}`);
    const pathParams = [...fn.route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: { type: "string", format: "uuid" },
    }));
    const queryShape = op.query ?? (op.bodyAsQuery && op.body instanceof ZodMiniObject ? op.body : undefined);
    const queryParams = queryShape
      ? Object.entries(queryShape.shape).map(([name, schema]) => {
          const description = globalRegistry.get(schema as ZodMiniType)?.description;
          return {
            name,
            in: "query",
            required: false,
            ...(description ? { description } : {}),
            schema: strip(schemaOf(schema as ZodMiniType, "output")),
          };
        })
      : [];
    const headerParams = [
      ...(op.idempotent
        ? [
            {
              name: "Idempotency-Key",
              in: "header",
              required: false,
              schema: { type: "string", minLength: op.idempotencyKeyMinLength ?? 1, maxLength: 255 },
            },
          ]
        : []),
      ...(op.ifMatch
        ? [
            {
              name: "If-Match",
              in: "header",
              required: false,
              description:
                'The message version as a strong entity tag ("3", as the ETag of an edit), a list of them (any may match), or * (any version). A weak tag (W/"3") never matches (412); a value of another form is a 400.',
              schema: { type: "string" },
            },
          ]
        : []),
    ];
    const responses: Record<string, unknown> = {
      [op.ok.status]: {
        description: "OK",
        headers: headersOf([
          "x-request-id",
          ...(op.ok.headers ?? []),
          ...(op.idempotent ? ["idempotent-replayed"] : []),
        ]),
        ...(op.ok.schema
          ? { content: { "application/json": { schema: strip(schemaOf(op.ok.schema)) } } }
          : {}),
      },
    };
    for (const status of new Set(op.errors)) {
      const own = op.errorBodies?.[status];
      responses[status] = own
        ? { description: "Unavailable", content: { "application/json": { schema: strip(schemaOf(own)) } } }
        : {
            description: Object.entries(statusOf)
              .filter(([, st]) => st === status)
              .map(([code]) => code)
              .join(", "),
            ...(ERROR_HEADERS[status] ? { headers: headersOf(ERROR_HEADERS[status]) } : {}),
            content: { "application/problem+json": { schema: { $ref: ref("Problem") } } },
          };
    }
    paths[fn.route.path] ??= {};
    (paths[fn.route.path] as Record<string, unknown>)[fn.route.method.toLowerCase()] = {
      operationId: fn.name,
      summary: fn.description,
      ...(op.auth ? { security: [{ sessionToken: [] }] } : { security: [] }),
      parameters: [...pathParams, ...queryParams, ...headerParams],
      ...(op.body
        ? {
            requestBody: {
              required: fn.name !== "sessions-create" && !op.bodyAsQuery,
              content: { "application/json": { schema: strip(schemaOf(op.body)) } },
            },
          }
        : {}),
      responses,
    };
  }
  const components = toJSONSchema(globalRegistry, { target: "draft-2020-12", uri: ref }) as {
    schemas: Record<string, Record<string, unknown>>;
  };
  return {
    openapi: "3.1.0",
    info: {
      title: "Chat backend API",
      version,
      description: "Serverless chat: sessions, messages, bot replies.",
    },
    // relative: the API answers at the root of wherever this document is served from (API Gateway's $default
    // stage, the local runner), so a client resolves it against that origin instead of a fixed host
    servers: [{ url: "/", description: "The origin this document was served from" }],
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(components.schemas).map(([k, v]) => [k, strip(v)])),
      securitySchemes: {
        sessionToken: { type: "http", scheme: "bearer", description: "The token from POST /sessions/create" },
      },
    },
  };
}
