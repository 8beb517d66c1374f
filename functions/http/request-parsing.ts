import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { safeParse, ZodMiniObject, type ZodMiniType } from "zod/mini";
import { ChatError, type FieldError } from "#chat/chat/errors.ts";
import { config } from "#chat/config.ts";
import { bearerToken } from "./bearer-token.ts";
import type { HttpSpec } from "./http-handler.ts";
import { HttpProblem } from "./problem.ts";

interface Parsed<B, Q, P> {
  body: B;
  query: Q;
  path: P;
  headers: Record<string, string | undefined>;
  token: string | undefined;
}

/** Body size, media type, JSON syntax, then zod: each failure is its own 4xx, before anything runs. */
export function parseRequest<B, Q, P>(
  spec: HttpSpec<B, Q, P>,
  event: APIGatewayProxyEventV2,
): Parsed<B, Q, P> {
  const headers = event.headers ?? {};
  const query = event.queryStringParameters ?? {};
  let body: unknown;
  if (spec.body) {
    const raw = readBody(event);
    if (raw === undefined) {
      if (spec.bodyFromQuery || spec.bodyOptional) body = {};
      else
        throw new ChatError("validation_failed", "a JSON body is required", {
          errors: [{ path: "", message: "required" }],
        });
    } else {
      assertJsonMediaType(headers["content-type"]);
      body = parseJson(raw);
    }
  }
  const fromQuery = spec.body && spec.bodyFromQuery ? withQueryFields(spec.body, body, query) : undefined;
  return {
    body: (spec.body ? validate(spec.body, fromQuery?.body ?? body, "", fromQuery?.errors) : undefined) as B,
    query: (spec.query ? validate(spec.query, spec.bodyFromQuery ? {} : query, "query.") : undefined) as Q,
    path: (spec.path ? validate(spec.path, event.pathParameters ?? {}, "path.") : undefined) as P,
    headers,
    token: bearerToken(headers.authorization),
  };
}

/**
 * The body's fields given as query parameters (DELETE /messages/delete), alone or with a body: each source's fields
 * are taken, none silently dropped. A field given both ways must say the same thing (the same value, or one the
 * schema reads the same, such as a UUID in other case); a query key that is no field of the body is unknown, at
 * `query.<key>` as on the other routes.
 */
function withQueryFields<B>(
  schema: ZodMiniType<B>,
  body: unknown,
  query: Record<string, string | undefined>,
): { body: unknown; errors: FieldError[] } {
  const shape = schema instanceof ZodMiniObject ? (schema.shape as Record<string, ZodMiniType>) : {};
  const errors: FieldError[] = [];
  // a body that is no object is refused by validation: the query cannot make it one
  const given = typeof body === "object" && body !== null && !Array.isArray(body) ? body : undefined;
  const merged: Record<string, unknown> = { ...given };
  for (const [key, value] of Object.entries(query)) {
    const field = Object.hasOwn(shape, key) ? shape[key] : undefined;
    if (!field) errors.push({ path: `query.${key}`, message: "unknown field" });
    else if (!given || !Object.hasOwn(given, key)) merged[key] = value;
    else if (!sameValue(field, (given as Record<string, unknown>)[key], value))
      errors.push({ path: `query.${key}`, message: `differs from ${key} in the body` });
  }
  return { body: given ? merged : body, errors };
}

const sameValue = (schema: ZodMiniType, a: unknown, b: unknown) => {
  if (a === b) return true;
  const [x, y] = [safeParse(schema, a), safeParse(schema, b)];
  return x.success && y.success && x.data === y.data;
};

function readBody(event: APIGatewayProxyEventV2): string | undefined {
  if (event.body === undefined || event.body === null || event.body === "") return undefined;
  const bytes = event.isBase64Encoded ? Buffer.from(event.body, "base64") : Buffer.from(event.body, "utf8");
  const max = config().MAX_BODY_BYTES;
  if (bytes.length > max)
    throw new HttpProblem("payload_too_large", `the request body is larger than ${max} bytes`);
  // fatal: invalid UTF-8 is malformed JSON, not silently replaced characters
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpProblem("malformed_json", "the request body is not valid UTF-8");
  }
}

function assertJsonMediaType(contentType: string | undefined) {
  const type = contentType?.split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json" && !type?.endsWith("+json")) {
    throw new HttpProblem("unsupported_media_type", "send the body as application/json");
  }
}

class ProtoKey extends Error {}
const refuseProtoKey = (key: string, value: unknown) => {
  if (key === "__proto__") throw new ProtoKey();
  return value;
};

/**
 * A key named __proto__ is refused wherever it is: validation would drop it from a record (free-form metadata)
 * and a JavaScript client reading it back would get a prototype, not a key. Only a body that could spell it
 * (the word, or any \u escape) pays for the reviver.
 */
function parseJson(raw: string): unknown {
  try {
    return raw.includes("proto") || raw.includes("\\u") ? JSON.parse(raw, refuseProtoKey) : JSON.parse(raw);
  } catch (err) {
    if (err instanceof ProtoKey)
      throw new ChatError("validation_failed", "invalid request: body: must not have a key named __proto__", {
        errors: [{ path: "", message: "must not have a key named __proto__" }],
      });
    throw new HttpProblem("malformed_json", "the request body is not valid JSON");
  }
}

/** `earlier`: errors already found in the same input (a query's, for the body it adds to), reported together. */
function validate<T>(schema: ZodMiniType<T>, value: unknown, prefix: string, earlier: FieldError[] = []): T {
  const result = safeParse(schema, value);
  if (result.success && earlier.length === 0) return result.data;
  if (result.success) throw invalidRequest(earlier);
  // an unknown key is reported at the key itself, one error each (zod reports them together, at the object)
  const errors = earlier.concat(
    result.error.issues.flatMap((i) =>
      i.code === "unrecognized_keys"
        ? i.keys.map((key) => ({
            path: prefix + [...i.path, key].map(String).join("."),
            message: "unknown field",
          }))
        : [{ path: prefix + i.path.map(String).join("."), message: i.message }],
    ),
  );
  throw invalidRequest(errors);
}

/**
 * At most MAX_REPORTED errors, each path at most MAX_PATH characters: a 64 KB body of thousands of unknown keys
 * (or one very long one) got a problem document several times its size, for no token.
 */
const MAX_REPORTED = 20;
const MAX_PATH = 100;

function invalidRequest(all: FieldError[]): ChatError {
  const errors = all
    .slice(0, MAX_REPORTED)
    .map((e) => (e.path.length > MAX_PATH ? { ...e, path: `${e.path.slice(0, MAX_PATH)}…` } : e));
  const more = all.length - errors.length;
  return new ChatError(
    "validation_failed",
    `invalid request: ${errors.map((e) => `${e.path || "body"}: ${e.message}`).join("; ")}${more ? `; and ${more} more` : ""}`,
    { errors },
  );
}
