import { randomUUID } from "node:crypto";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { capturedOutput } from "../helpers/captured-output.ts";
import { lambdaContext } from "../helpers/lambda-events.ts";
import { resetRuntime } from "../helpers/runner-fixture.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

/**
 * A secret stored as plain text instead of JSON (`create-secret --secret-string <password>`, an easy slip for the
 * external data plane's operator-made secrets): the scheduled relay, whose errors reach its log, Lambda's error
 * line and the errors alarm, must say which secret is wrong without printing any of it.
 */
process.env.AWS_REGION ??= "us-east-1";
const PASSWORD = "hunter2-Plain";
const DB_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-plain-AbCdEf";
const KAFKA_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:kafka-plain-AbCdEf";
const secrets = mockClient(SecretsManagerClient);
secrets.on(GetSecretValueCommand).callsFake((input: { SecretId: string }) => ({
  ARN: input.SecretId,
  SecretString: PASSWORD,
}));

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(4);
});
afterEach(async () => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  await resetRuntime();
});
afterAll(async () => {
  secrets.restore();
  await db?.drop();
});

type Handler = (event: unknown, context: unknown) => Promise<unknown>;

/** The relay's run: what it printed and how it failed. */
async function relayRun(): Promise<{ printed: string; error: string }> {
  await resetRuntime();
  const { handler } = (await import("../../functions/outbox-relay.ts")) as { handler: Handler };
  const { result: error, printed } = await capturedOutput(() =>
    handler({}, lambdaContext("outbox-relay", 60_000)).then(
      () => "",
      (err: Error) => `${err.name}: ${err.message}`,
    ),
  );
  vi.restoreAllMocks();
  return { printed, error };
}

const fragment = PASSWORD.slice(0, 6); // V8 quotes a long text's first 10 characters, a short one whole

describe("a secret that is not JSON", () => {
  it("fails the relay naming the database secret, without its content", async () => {
    vi.stubEnv("DATABASE_URL", undefined);
    vi.stubEnv("DATABASE_SECRET_ARN", DB_ARN);
    vi.stubEnv("KAFKA_BROKERS", "127.0.0.1:1");
    const { printed, error } = await relayRun();
    expect(error).toContain(`the secret ${DB_ARN} is not JSON`);
    expect(error).not.toContain(fragment);
    expect(printed).not.toContain(fragment);
  });

  it("fails the relay's publish naming the Kafka secret, without its content, in its log too", async () => {
    const id = randomUUID();
    await db.pool.query(
      `INSERT INTO outbox (event_id, session_id, event_type, event) VALUES ($1, $2, 'chat.message.created', $3)`,
      [id, randomUUID(), JSON.stringify({ specversion: "1.0", id, type: "chat.message.created", data: {} })],
    );
    vi.stubEnv("DATABASE_URL", db.url);
    vi.stubEnv("KAFKA_BROKERS", "127.0.0.1:1");
    vi.stubEnv("KAFKA_AUTH", "scram-sha-512");
    vi.stubEnv("KAFKA_SECRET_ARN", KAFKA_ARN);
    const { printed, error } = await relayRun();
    expect(error).toContain(`the secret ${KAFKA_ARN} is not JSON`);
    expect(printed).toContain("relay stopped early");
    expect(error).not.toContain(fragment);
    expect(printed).not.toContain(fragment);
  });
});
