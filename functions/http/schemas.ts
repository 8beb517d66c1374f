import { z } from "zod";

/**
 * The HTTP contract as zod schemas: requests are validated with them and docs/openapi.json is generated
 * from them, so the two cannot drift. Objects are strict: unknown fields are a 400.
 */
const uuid = z.uuid({ version: "v4" }).describe("UUID");
const time = z.iso.datetime({ offset: false }).describe("RFC 3339 UTC time");
// Length is checked by the domain (code points, not UTF-16 units); this only bounds the worst case.
const content = z.string().min(1).max(32_000).describe("Message text, 1–8,000 characters");

export const metadataSchema = z
  .record(z.string().max(128), z.unknown())
  .describe("Free-form JSON, at most 4 KiB");

export const createSessionBody = z
  .strictObject({
    user_id: z.string().min(1).max(256).nullish(),
    metadata: metadataSchema.optional(),
  })
  .describe("CreateSessionRequest");

export const postMessageBody = z.strictObject({ session_id: uuid, content }).describe("PostMessageRequest");

export const editMessageBody = z
  .strictObject({
    session_id: uuid,
    message_id: uuid,
    content,
    expected_version: z.number().int().min(1).optional(),
    regenerate: z.boolean().optional(),
  })
  .describe("EditMessageRequest");

export const deleteMessageBody = z
  .strictObject({ session_id: uuid, message_id: uuid })
  .describe("DeleteMessageRequest");

export const sessionPathParams = z.strictObject({ session_id: uuid });

export const historyQuery = z.strictObject({
  after_seq: z.coerce.number().int().min(0).max(2_147_483_647).default(0),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

export const messageSchema = z
  .strictObject({
    message_id: uuid,
    session_id: uuid,
    seq: z.number().int().min(1),
    role: z.enum(["user", "assistant"]),
    content: z.string(),
    version: z.number().int().min(1),
    created_at: time,
    edited_at: time.nullable(),
    reply_to: uuid.nullable(),
  })
  .meta({ id: "Message" });

export const sessionSchema = z
  .strictObject({
    session_id: uuid,
    user_id: z.string().nullable(),
    metadata: metadataSchema,
    created_at: time,
    updated_at: time,
    last_seq: z.number().int().min(0),
    message_count: z.number().int().min(0),
  })
  .meta({ id: "Session" });

const suggestions = z.array(z.string()).describe("Suggested next user messages");

export const createSessionResponse = z
  .strictObject({ session: sessionSchema, token: z.string(), messages: z.array(messageSchema), suggestions })
  .meta({ id: "CreateSessionResponse" });
export const postMessageResponse = z
  .strictObject({ message: messageSchema, reply: messageSchema, suggestions })
  .meta({ id: "PostMessageResponse" });
export const editMessageResponse = z
  .strictObject({ message: messageSchema, reply: messageSchema.optional() })
  .meta({ id: "EditMessageResponse" });
export const deleteMessageResponse = z
  .strictObject({ message_id: uuid, deleted: z.literal(true) })
  .meta({ id: "DeleteMessageResponse" });
export const historyResponse = z
  .strictObject({ messages: z.array(messageSchema), next_after_seq: z.number().int().nullable() })
  .meta({ id: "HistoryPage" });
export const suggestionsResponse = z.strictObject({ suggestions }).meta({ id: "Suggestions" });

const check = z.strictObject({
  status: z.enum(["ok", "down", "disabled"]),
  latency_ms: z.number().nullable(),
});
export const healthResponse = z
  .strictObject({
    status: z.enum(["ok", "degraded", "down"]),
    version: z.string(),
    checks: z.strictObject({ postgres: check, redis: check, kafka: check }),
  })
  .meta({ id: "Health" });

export const problemSchema = z
  .strictObject({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.string(),
    request_id: z.string(),
    errors: z.array(z.strictObject({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: "Problem" });
