/**
 * THE list of functions. The local runner and the CDK stack both read it; nothing else lists functions.
 * `handler` is the file under functions/ exporting `handler`.
 */
export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE";

export interface HttpRoute {
  method: HttpMethod;
  /** API Gateway HTTP API path, `{name}` for path parameters. */
  path: string;
}

/**
 * What a function talks to. The CDK stack gives it exactly these (environment, IAM, VPC placement); the local runner
 * ignores the field.
 * - postgres: the database (its secret, through the proxy)
 * - redis: the cache, including the rate limiter's
 * - kafka-produce: publishes events (the outbox relay, the after-commit fast path of a change)
 * - kafka-describe: cluster metadata only (the health check's ping)
 * - responder: asks the responder for a reply (bedrock:InvokeModel when RESPONDER=bedrock)
 */
export type Backend = "postgres" | "redis" | "kafka-produce" | "kafka-describe" | "responder";

export interface FunctionSpec {
  /** Stable name: Lambda function name suffix, Invoke API name in the local runner. */
  name: string;
  /** File under functions/ (without extension) that exports `handler`. */
  handler: string;
  description: string;
  route?: HttpRoute;
  /** EventBridge Scheduler expression, e.g. "rate(1 minute)". */
  schedule?: string;
  /** Kafka (MSK) event source: the topic the function consumes. */
  kafkaTopic?: string;
  /** The event source's batch size: at most this many records per invocation (Lambda's default for MSK, 100). */
  kafkaBatchSize?: number;
  /** API Gateway's `$default` route: every request no route matches (the local runner does the same). */
  defaultRoute?: true;
  /** Required of every manifest entry (the stack refuses one without); optional for local test fixtures. */
  uses?: readonly Backend[];
  memoryMb: number;
  timeoutSeconds: number;
}

export const CHAT_TOPIC = "chat-messages";

/**
 * The topic `spec` consumes where the chat events go to `chatTopic` (the stack's context kafkaTopic, the runner's
 * KAFKA_TOPIC): an entry naming CHAT_TOPIC reads the one its relay publishes to; any other topic stays as named.
 */
export const consumedTopic = (
  spec: Pick<FunctionSpec, "kafkaTopic">,
  chatTopic: string,
): string | undefined => (spec.kafkaTopic === CHAT_TOPIC ? chatTopic : spec.kafkaTopic);

/** Lambda's default BatchSize for an MSK event source, for a `kafkaTopic` function that names none. */
export const DEFAULT_KAFKA_BATCH_SIZE = 100;

export const functions: readonly FunctionSpec[] = [
  {
    name: "sessions-create",
    handler: "sessions-create",
    description: "Create a chat session with the bot's welcome message",
    route: { method: "POST", path: "/sessions/create" },
    uses: ["postgres", "redis", "kafka-produce"],
    memoryMb: 512,
    timeoutSeconds: 10,
  },
  {
    name: "session-get",
    handler: "session-get",
    description: "Read a session's summary",
    route: { method: "GET", path: "/sessions/{session_id}" },
    uses: ["postgres", "redis"],
    memoryMb: 256,
    timeoutSeconds: 10,
  },
  {
    name: "session-erase",
    handler: "session-erase",
    description: "Erase a session and all its messages for good",
    route: { method: "DELETE", path: "/sessions/{session_id}" },
    uses: ["postgres", "redis", "kafka-produce"],
    memoryMb: 256,
    timeoutSeconds: 10,
  },
  {
    name: "session-messages",
    handler: "session-messages",
    description: "Read a page of a session's history",
    route: { method: "GET", path: "/sessions/{session_id}/messages" },
    uses: ["postgres", "redis"],
    memoryMb: 256,
    timeoutSeconds: 10,
  },
  {
    name: "session-suggestions",
    handler: "session-suggestions",
    description: "Read the suggested next replies",
    route: { method: "GET", path: "/sessions/{session_id}/suggestions" },
    uses: ["postgres", "redis"],
    memoryMb: 256,
    timeoutSeconds: 10,
  },
  {
    name: "messages-post",
    handler: "messages-post",
    description: "Post a user message and get the bot's reply",
    route: { method: "POST", path: "/messages/post" },
    uses: ["postgres", "redis", "kafka-produce", "responder"],
    memoryMb: 512,
    timeoutSeconds: 15,
  },
  {
    name: "messages-edit",
    handler: "messages-edit",
    description: "Edit a user message (optionally regenerating the reply)",
    route: { method: "PUT", path: "/messages/edit" },
    uses: ["postgres", "redis", "kafka-produce", "responder"],
    memoryMb: 512,
    timeoutSeconds: 15,
  },
  {
    name: "messages-delete",
    handler: "messages-delete",
    description: "Delete a message (tombstone)",
    route: { method: "DELETE", path: "/messages/delete" },
    uses: ["postgres", "redis", "kafka-produce"],
    memoryMb: 256,
    timeoutSeconds: 10,
  },
  {
    name: "health",
    handler: "health",
    description: "Health of Postgres, Redis and Kafka",
    route: { method: "GET", path: "/health" },
    uses: ["postgres", "redis", "kafka-describe"],
    memoryMb: 256,
    timeoutSeconds: 5,
  },
  {
    name: "openapi",
    handler: "openapi",
    description: "The OpenAPI 3.1 document",
    route: { method: "GET", path: "/openapi.json" },
    uses: [],
    memoryMb: 128,
    timeoutSeconds: 3,
  },
  {
    name: "route-not-found",
    handler: "route-not-found",
    description: "Answer a request no route matches: 404, or 405 with Allow for a known path",
    defaultRoute: true,
    uses: ["redis"],
    memoryMb: 128,
    timeoutSeconds: 3,
  },
  {
    name: "outbox-relay",
    handler: "outbox-relay",
    description: "Publish unpublished outbox events to Kafka, in per-session order",
    schedule: "rate(1 minute)",
    uses: ["postgres", "kafka-produce"],
    memoryMb: 512,
    timeoutSeconds: 60,
  },
  {
    name: "maintenance",
    handler: "maintenance",
    description:
      "Prune published outbox rows, expired idempotency records and old consumed event ids; purge idle sessions",
    schedule: "rate(1 hour)",
    uses: ["postgres", "redis"],
    memoryMb: 256,
    timeoutSeconds: 120,
  },
  {
    name: "health-canary",
    handler: "health-canary",
    description: "Call the public GET /health and record latency and status as metrics",
    schedule: "rate(5 minutes)",
    uses: [],
    memoryMb: 256,
    timeoutSeconds: 30,
  },
  {
    name: "events-consumer",
    handler: "events-consumer",
    description: "Consume chat-messages and maintain the per-session activity projection",
    kafkaTopic: CHAT_TOPIC,
    kafkaBatchSize: 100,
    uses: ["postgres"],
    memoryMb: 512,
    timeoutSeconds: 60,
  },
];

export const httpFunctions = functions.filter((f): f is FunctionSpec & { route: HttpRoute } => !!f.route);
export const scheduledFunctions = functions.filter(
  (f): f is FunctionSpec & { schedule: string } => !!f.schedule,
);

/** The function behind API Gateway's `$default` route, if the manifest has one. */
export const defaultRouteFunction = functions.find((f) => f.defaultRoute);

export function findFunction(name: string): FunctionSpec | undefined {
  return functions.find((f) => f.name === name);
}
