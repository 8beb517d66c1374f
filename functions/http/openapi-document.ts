import { globalRegistry, looseObject, toJSONSchema, ZodMiniObject, type ZodMiniType } from "zod/mini";
import {
  MAY_HAVE_BEEN_ERASED,
  MAY_HAVE_BEEN_MADE,
  UNAVAILABLE_RETRY_AFTER_SECONDS,
} from "#chat/chat/errors.ts";
import { defaultRouteFunction, httpFunctions } from "../manifest.ts";
import {
  CREATE_KEY_MIN_LENGTH,
  IDEMPOTENCY_KEY_MAX_LENGTH,
  IDEMPOTENCY_KEY_PATTERN,
} from "./idempotency-header.ts";
import { type ErrorCode, statusOf } from "./problem.ts";
import { RATE_LIMIT_EXEMPT } from "./rate-limit.ts";
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
  /** What a key is unique within, when not the whole operation (said in the header's description). */
  idempotencyScope?: string;
  ifMatch?: boolean;
  /** Takes If-None-Match against its ETag: 304, no body, when nothing changed. */
  ifNoneMatch?: boolean;
  ok: { status: number; schema?: ZodMiniType; headers?: string[] };
  /**
   * The problem codes of the operation's own failures (the service's). Those its parts bring are added by
   * problemCodes: the body's, the parameters', the token's, Idempotency-Key's, If-Match's, the rate limit's.
   */
  errors?: ErrorCode[];
  /** Answers without the chat service (functions that say `chat: false`): no 503 service_unavailable. */
  chat?: false;
  /** Error statuses answered with a JSON body of their own instead of problem+json (GET /health's 503). */
  errorBodies?: Record<number, ZodMiniType>;
  /** A change whose 503 can say it may have been made (an erase: the session may have been erased). */
  uncertain?: "change" | "erase";
}

/**
 * What a 503 service_unavailable tells a client, in its description: a client generated from the document otherwise
 * reads every 503 as "nothing changed, retry", and reposts a change that was made (README, What a client should know).
 */
function unavailableDescription(op: Operation): string {
  const { min, max } = UNAVAILABLE_RETRY_AFTER_SECONDS;
  const plain = `service_unavailable: a backend did not answer and nothing was changed; retry after Retry-After (${min}–${max} s).`;
  if (op.uncertain === "change")
    return `${plain} Unless \`detail\` says the change "${MAY_HAVE_BEEN_MADE}": the database did not answer after it was sent, so it may have committed. Retry a post or create with the same Idempotency-Key (a change that was made is replayed, not made twice); without one, read the session before repeating it.`;
  if (op.uncertain === "erase")
    return `${plain} Unless \`detail\` says the session "${MAY_HAVE_BEEN_ERASED}": the database did not answer after the erase was sent, and whether it committed could not be checked. Retry the DELETE: a 204, or a 401 (an erased session's token is no longer valid), means the session is gone.`;
  return plain;
}

/** Every problem code an operation can answer: per part of the request it takes, then its own. */
function problemCodes(name: string, op: Omit<Operation, "ok">, pathParams: boolean): ErrorCode[] {
  const codes: ErrorCode[] = [];
  if (op.body || op.query || pathParams || op.idempotent || op.ifMatch) codes.push("validation_failed");
  if (op.body) codes.push("malformed_json", "payload_too_large", "unsupported_media_type");
  // a valid token of another session: 404, as if the session did not exist
  if (op.auth) codes.push("unauthorized", "session_not_found");
  if (op.idempotent) codes.push("idempotency_key_reused", "request_in_progress");
  if (op.ifMatch) codes.push("precondition_failed");
  codes.push(...(op.errors ?? []));
  if (!RATE_LIMIT_EXEMPT.has(name)) codes.push("rate_limited");
  if (op.chat !== false) codes.push("service_unavailable");
  // any operation: what the problem middleware answers for a failure nothing else names (a bug, a deadlock)
  codes.push("internal_error");
  return [...new Set(codes)];
}

/** Headers a problem with the code carries (functions/http/http-handler.ts, rate-limit.ts, route-not-found.ts). */
const PROBLEM_HEADERS: Partial<Record<ErrorCode, string[]>> = {
  unauthorized: ["WWW-Authenticate"],
  method_not_allowed: ["Allow"],
  session_busy: ["Retry-After"],
  request_in_progress: ["Retry-After"],
  rate_limited: ["Retry-After", "RateLimit", "RateLimit-Policy"],
  service_unavailable: ["Retry-After"],
};
const HEADER_DESCRIPTIONS: Record<string, string> = {
  location: "The new session: /sessions/{session_id}, relative to the API's origin",
};
/**
 * Headers on (nearly) every answer: described once in components.headers, referred to from each response (they are
 * on some ninety responses, and the document is inlined in the openapi function).
 */
const SHARED_HEADERS: Record<string, string> = {
  "x-request-id": "The request's id (a problem's request_id): quote it when reporting a problem",
  RateLimit:
    'What is left of each limit the request counts against: "per-token";r=<requests left>;t=<seconds>, … (draft-ietf-httpapi-ratelimit-headers)',
  "RateLimit-Policy":
    'The limits: "per-token";q=<requests>;w=<window in seconds>, "per-ip";q=…;w=… (draft-ietf-httpapi-ratelimit-headers)',
};
const sharedHeader = (h: string) =>
  Object.keys(SHARED_HEADERS).find((name) => name.toLowerCase() === h.toLowerCase());
/** The names, once each whatever their letter case (the first spelling kept). */
const headersOf = (names: string[]) =>
  Object.fromEntries(
    names
      .filter((h, i) => names.findIndex((n) => n.toLowerCase() === h.toLowerCase()) === i)
      .map((h) => {
        const shared = sharedHeader(h);
        if (shared) return [shared, { $ref: `#/components/headers/${shared}` }];
        const description = HEADER_DESCRIPTIONS[h.toLowerCase()];
        return [h, { ...(description ? { description } : {}), schema: { type: "string" } }];
      }),
  );

/**
 * Headers every answer of the function carries, whatever its status (functions/http/http-handler.ts, rate-limit.ts):
 * the request id, and the rate limit's fields on every answer the limiter saw, not only on its 429.
 */
const everyAnswerHeaders = (name: string) => [
  "x-request-id",
  ...(RATE_LIMIT_EXEMPT.has(name) ? [] : ["RateLimit", "RateLimit-Policy"]),
];

/** The problem responses for these codes, by status: the Problem schema, its `code` one of the status's codes. */
function problemResponses(
  codes: readonly ErrorCode[],
  common: string[],
): Record<string, Record<string, unknown>> {
  const responses: Record<string, Record<string, unknown>> = {};
  const statuses = [...new Set(codes.map((c) => statusOf[c]))].sort((a, b) => a - b);
  for (const status of statuses) {
    const these = codes.filter((c) => statusOf[c] === status);
    const headers = [...common, ...these.flatMap((c) => PROBLEM_HEADERS[c] ?? [])];
    responses[status] = {
      description: these.join(", "),
      headers: headersOf(headers),
      content: {
        "application/problem+json": {
          schema: {
            allOf: [{ $ref: ref("Problem") }, { type: "object", properties: { code: { enum: these } } }],
          },
        },
      },
    };
  }
  return responses;
}

/**
 * What API Gateway answers itself on any route, before or instead of the function (README, "How it works"): its
 * own `{"message": …}` JSON, which a client generated from this document must expect beside the problems. Each is a
 * component response; a status the function answers too also gets it as another media type.
 */
const GATEWAY_ANSWERS: Record<number, { name: string; why: string }> = {
  413: {
    name: "GatewayPayloadTooLarge",
    why: "a body over API Gateway's 10 MB, or one whose event would pass Lambda's 6 MB",
  },
  429: { name: "GatewayThrottled", why: "the stage's throttle, spent before any per-client limit" },
  500: {
    name: "GatewayInternalError",
    why: "the function failed, ran out of time, or answered more than Lambda returns",
  },
  503: { name: "GatewayUnavailable", why: "the integration timed out" },
};

const gatewayResponses = () =>
  Object.fromEntries(
    Object.values(GATEWAY_ANSWERS).map(({ name, why }) => [
      name,
      {
        description: `API Gateway: ${why}`,
        // the local runner's answer carries one; API Gateway's carries its apigw-requestid instead
        headers: headersOf(["x-request-id"]),
        content: { "application/json": { schema: { $ref: ref("GatewayError") } } },
      },
    ]),
  );

/** Adds API Gateway's own answers: another media type of a status the function answers too, else a $ref. */
function withGatewayAnswers(responses: Record<string, Record<string, unknown>>) {
  for (const [status, { name }] of Object.entries(GATEWAY_ANSWERS)) {
    const gateway = { $ref: ref("GatewayError") };
    const own = responses[status] as
      | { description: string; content?: Record<string, { schema: unknown }> }
      | undefined;
    if (!own) {
      responses[status] = { $ref: `#/components/responses/${name}` };
      continue;
    }
    const json = own.content?.["application/json"];
    // after a description in sentences (a 503's, unavailableDescription), one more sentence
    own.description += own.description.endsWith(".")
      ? ` Or API Gateway's own, as ${name}.`
      : `; or API Gateway's own, as ${name}`;
    own.content = {
      ...own.content,
      "application/json": { schema: json ? { anyOf: [json.schema, gateway] } : gateway },
    };
  }
  return responses;
}

const operations: Record<string, Operation> = {
  "sessions-create": {
    body: s.createSessionBody,
    auth: false,
    idempotent: true,
    idempotencyKeyMinLength: CREATE_KEY_MIN_LENGTH,
    idempotencyScope: "A key replays only for requests from the address that first sent it.",
    ok: { status: 201, schema: s.createSessionResponse, headers: ["location"] },
    uncertain: "change",
  },
  "session-get": { auth: true, ok: { status: 200, schema: s.sessionSchema } },
  "session-erase": { auth: true, ok: { status: 204 }, errors: ["session_busy"], uncertain: "erase" },
  "session-messages": {
    auth: true,
    query: s.historyQuery,
    ifNoneMatch: true,
    ok: { status: 200, schema: s.historyResponse, headers: ["x-cache", "etag"] },
  },
  "session-suggestions": { auth: true, ok: { status: 200, schema: s.suggestionsResponse } },
  "messages-post": {
    body: s.postMessageBody,
    auth: true,
    idempotent: true,
    idempotencyScope: "Keys are per session: the same key on another session is a new post.",
    ok: { status: 201, schema: s.postMessageResponse },
    // replay_withdrawn: only a post's stored response is withdrawn (when a message it posted changes)
    errors: ["session_busy", "session_full", "replay_withdrawn"],
    uncertain: "change",
  },
  "messages-edit": {
    body: s.editMessageBody,
    auth: true,
    ifMatch: true,
    ok: { status: 200, schema: s.editMessageResponse, headers: ["etag"] },
    // session_full: a regenerate adds a reply where there was none
    errors: ["message_not_found", "message_not_editable", "version_conflict", "session_busy", "session_full"],
    uncertain: "change",
  },
  "messages-delete": {
    body: s.deleteMessageBody,
    auth: true,
    ifMatch: true,
    ok: { status: 200, schema: s.deleteMessageResponse },
    bodyAsQuery: true,
    errors: ["message_not_found", "session_busy"],
    uncertain: "change",
  },
  health: {
    auth: false,
    chat: false,
    ok: { status: 200, schema: s.healthResponse },
    errorBodies: { 503: s.healthResponse },
  },
  openapi: { auth: false, chat: false, ok: { status: 200, schema: looseObject({}) } },
};

/** API Gateway's `$default` route (functions/route-not-found.ts): what answers a request no operation takes. */
const defaultRoute: Omit<Operation, "ok"> = {
  auth: false,
  chat: false,
  errors: ["route_not_found", "method_not_allowed"],
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
              description: `Visible ASCII characters (0x21–0x7E)${
                (op.idempotencyKeyMinLength ?? 1) > 1 ? ": a random key, such as a UUID" : ""
              }. The same key with the same request replays the first response; with another request it is a 422.${
                op.idempotencyScope ? ` ${op.idempotencyScope}` : ""
              }`,
              schema: {
                type: "string",
                minLength: op.idempotencyKeyMinLength ?? 1,
                maxLength: IDEMPOTENCY_KEY_MAX_LENGTH,
                pattern: IDEMPOTENCY_KEY_PATTERN.source,
              },
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
      ...(op.ifNoneMatch
        ? [
            {
              name: "If-None-Match",
              in: "header",
              required: false,
              description:
                "The ETag of an earlier answer (a weak tag of the session's state, which every post, edit, delete or regenerate moves), a list of them, or *: 304 with no body while the session has not changed since.",
              schema: { type: "string" },
            },
          ]
        : []),
    ];
    const common = everyAnswerHeaders(fn.name);
    const responses: Record<string, Record<string, unknown>> = {
      [op.ok.status]: {
        description: "OK",
        headers: headersOf([
          ...common,
          ...(op.ok.headers ?? []),
          ...(op.idempotent ? ["idempotent-replayed"] : []),
        ]),
        ...(op.ok.schema
          ? { content: { "application/json": { schema: strip(schemaOf(op.ok.schema)) } } }
          : {}),
      },
    };
    if (op.ifNoneMatch)
      responses["304"] = {
        description: "Not Modified: the session has not changed since the If-None-Match ETag",
        headers: headersOf([...common, "etag"]),
      };
    Object.assign(responses, problemResponses(problemCodes(fn.name, op, pathParams.length > 0), common));
    if (op.chat !== false)
      (responses["503"] as { description: string }).description = unavailableDescription(op);
    for (const [status, own] of Object.entries(op.errorBodies ?? {}))
      responses[status] = {
        description: "Unavailable",
        headers: headersOf(common),
        content: { "application/json": { schema: strip(schemaOf(own)) } },
      };
    withGatewayAnswers(responses);
    paths[fn.route.path] ??= {};
    (paths[fn.route.path] as Record<string, unknown>)[fn.route.method.toLowerCase()] = {
      operationId: fn.name,
      summary: fn.description,
      ...(op.auth ? { security: [{ sessionToken: [] }] } : { security: [] }),
      parameters: [...pathParams, ...queryParams, ...headerParams],
      ...(op.body
        ? {
            requestBody: {
              ...(op.bodyAsQuery
                ? {
                    description:
                      "The fields may come in this body, as query parameters, or split between them: the request as a whole needs each required field once (the schema states the body alone). A field given both ways must have the same value (else 400 at query.<field>).",
                  }
                : {}),
              required: fn.name !== "sessions-create" && !op.bodyAsQuery,
              content: { "application/json": { schema: strip(schemaOf(op.body)) } },
            },
          }
        : {}),
      responses,
    };
  }
  if (!defaultRouteFunction) throw new Error("the manifest has no $default route function");
  // components named after their codes: RouteNotFound, MethodNotAllowed, RateLimited, InternalError
  const problems = problemResponses(
    problemCodes(defaultRouteFunction.name, defaultRoute, false),
    everyAnswerHeaders(defaultRouteFunction.name),
  );
  const named = Object.values(problems).map((r) => ({
    name: String(r.description).replace(/(?:^|_)([a-z])/g, (_, c: string) => c.toUpperCase()),
    r,
  }));
  withGatewayAnswers(problems);
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
    // OpenAPI has no operation for "any other method or path": the responses of API Gateway's `$default` route
    // (functions/route-not-found.ts) are components, and this extension maps its statuses to them.
    "x-default-route": {
      description:
        "A request no operation takes: 404 route_not_found, or 405 method_not_allowed with Allow when the path has operations for other methods.",
      responses: Object.fromEntries(
        Object.entries(problems).map(([status, r]) => {
          const name = named.find((n) => n.r === r)?.name;
          return [status, name ? { $ref: `#/components/responses/${name}` } : r];
        }),
      ),
    },
    components: {
      responses: {
        ...Object.fromEntries(named.map(({ name, r }) => [name, r])),
        ...gatewayResponses(),
      },
      headers: Object.fromEntries(
        Object.entries(SHARED_HEADERS).map(([name, description]) => [
          name,
          { description, schema: { type: "string" } },
        ]),
      ),
      schemas: Object.fromEntries(Object.entries(components.schemas).map(([k, v]) => [k, strip(v)])),
      securitySchemes: {
        sessionToken: { type: "http", scheme: "bearer", description: "The token from POST /sessions/create" },
      },
    },
  };
}
