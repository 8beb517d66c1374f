import {
  _default,
  array,
  boolean,
  enum as enumOf,
  globalRegistry,
  int,
  iso,
  literal,
  maximum,
  maxLength,
  minimum,
  minLength,
  nullable,
  nullish,
  number,
  optional,
  pipe,
  record,
  regex,
  strictObject,
  string,
  toLowerCase,
  transform,
  unknown,
  uuid as uuidSchema,
  type ZodMiniType,
} from "zod/mini";
import { DEFAULT_MAX_CONTENT_CHARS } from "#chat/config.ts";
import "#chat/zod-locale.ts";

/**
 * The HTTP contract as zod schemas: requests are validated with them and docs/openapi.json is generated
 * from them, so the two cannot drift. Objects are strict: unknown fields are a 400.
 * zod/mini's functional API (named imports): bundles keep only what is used (25–40 KB, not classic zod's 450 KB).
 * `described` / `named` are classic zod's `.describe()` / `.meta()`: the description or the component id.
 */
const described = <T extends ZodMiniType>(schema: T, description: string): T => {
  globalRegistry.add(schema, { description });
  return schema;
};
/** Document-only keywords: for rules the domain checks (with its own messages) rather than zod. */
const meta = <T extends ZodMiniType>(
  schema: T,
  keywords: { description: string } & Record<string, unknown>,
): T => {
  globalRegistry.add(schema, keywords);
  return schema;
};
const named = <T extends ZodMiniType>(schema: T, id: string): T => {
  globalRegistry.add(schema, { id });
  return schema;
};

const integer = (min: number, max?: number) =>
  number().check(int(), minimum(min), ...(max === undefined ? [] : [maximum(max)]));

// A query parameter is text: only plain decimal digits are a number (`Number()` would also take "0x10", "1e1",
// " 5" and "" as 16, 10, 5 and 0). The OpenAPI document shows the parsed value's schema (an integer).
const queryInteger = (min: number, max: number, fallback: number) =>
  _default(
    pipe(
      string().check(regex(/^[0-9]{1,10}$/, { error: "Expected an integer written in decimal digits" })),
      pipe(transform(Number), integer(min, max)),
    ),
    fallback,
  );

// Canonical (lower-case) form: Postgres compares uuids regardless of case, but cache keys, Idempotency-Key scopes
// and the ids compared in memory are strings.
const uuid = described(uuidSchema({ version: "v4" }).check(toLowerCase()), "UUID");
const time = described(iso.datetime({ offset: false }), "RFC 3339 UTC time");
// Length and blankness are the domain's rules (content-rules.ts): its limit is MAX_CONTENT_CHARS, counted in code
// points, and every content that breaks one gets the same message from it. A zod bound here would answer some of
// them with a message of its own, in UTF-16 units. The document states the bounds (JSON Schema counts code points
// too) at MAX_CONTENT_CHARS's default.
const content = meta(string(), {
  description:
    "Message text: 1 to MAX_CONTENT_CHARS Unicode code points (8,000 by default; more is a 400), not only white space and invisible (default-ignorable) characters",
  minLength: 1,
  maxLength: DEFAULT_MAX_CONTENT_CHARS,
});

export const metadataSchema = described(
  record(string().check(maxLength(128)), unknown()),
  "Free-form JSON, at most 4 KiB",
);

export const createSessionBody = described(
  strictObject({
    user_id: nullish(string().check(minLength(1), maxLength(256))),
    metadata: optional(metadataSchema),
  }),
  "CreateSessionRequest",
);

export const postMessageBody = described(strictObject({ session_id: uuid, content }), "PostMessageRequest");

export const editMessageBody = described(
  strictObject({
    session_id: uuid,
    message_id: uuid,
    content,
    expected_version: optional(integer(1)),
    regenerate: optional(boolean()),
  }),
  "EditMessageRequest",
);

export const deleteMessageBody = described(
  strictObject({ session_id: uuid, message_id: uuid }),
  "DeleteMessageRequest",
);

export const sessionPathParams = strictObject({ session_id: uuid });

export const historyQuery = strictObject({
  after_seq: queryInteger(0, 2_147_483_647, 0),
  limit: described(
    queryInteger(1, 200, 50),
    "At most this many messages. A page of long messages may hold fewer (at most 3,000,000 bytes of messages, so that it fits in a Lambda response): follow next_after_seq.",
  ),
});

export const messageSchema = named(
  strictObject({
    message_id: uuid,
    session_id: uuid,
    seq: integer(1),
    role: enumOf(["user", "assistant"]),
    content: string(),
    version: integer(1),
    created_at: time,
    edited_at: nullable(time),
    reply_to: nullable(uuid),
  }),
  "Message",
);

export const sessionSchema = named(
  strictObject({
    session_id: uuid,
    user_id: nullable(string()),
    metadata: metadataSchema,
    created_at: time,
    updated_at: time,
    last_seq: integer(0),
    message_count: integer(0),
  }),
  "Session",
);

const suggestions = described(array(string()), "Suggested next user messages");

export const createSessionResponse = named(
  strictObject({ session: sessionSchema, token: string(), messages: array(messageSchema), suggestions }),
  "CreateSessionResponse",
);
export const postMessageResponse = named(
  strictObject({ message: messageSchema, reply: messageSchema, suggestions }),
  "PostMessageResponse",
);
export const editMessageResponse = named(
  strictObject({
    message: messageSchema,
    reply: optional(messageSchema),
    suggestions: optional(
      described(array(string()), "With a regenerated reply: its suggested next user messages"),
    ),
  }),
  "EditMessageResponse",
);
export const deleteMessageResponse = named(
  strictObject({ message_id: uuid, deleted: literal(true) }),
  "DeleteMessageResponse",
);
export const historyResponse = named(
  strictObject({
    messages: array(messageSchema),
    next_after_seq: described(
      nullable(number().check(int())),
      "The after_seq of the next page; null when this page ends the history.",
    ),
  }),
  "HistoryPage",
);
export const suggestionsResponse = named(strictObject({ suggestions }), "Suggestions");

const check = strictObject({
  status: enumOf(["ok", "down", "disabled"]),
  latency_ms: nullable(number()),
});
export const healthResponse = named(
  strictObject({
    status: enumOf(["ok", "degraded", "down"]),
    version: string(),
    checks: strictObject({ postgres: check, redis: check, kafka: check }),
  }),
  "Health",
);

export const problemSchema = named(
  strictObject({
    type: string(),
    title: string(),
    status: number().check(int()),
    detail: string(),
    code: string(),
    request_id: string(),
    errors: optional(array(strictObject({ path: string(), message: string() }))),
  }),
  "Problem",
);

/**
 * What API Gateway answers itself, before or instead of a function (its throttle, a body it or Lambda cannot take, a
 * failed function, an integration timeout): its own JSON, not a problem. Only the document uses it.
 */
export const gatewayErrorSchema = named(
  strictObject({ message: described(string(), 'API Gateway\'s words, such as "Too Many Requests"') }),
  "GatewayError",
);
