import { randomBytes } from "node:crypto";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_URL } from "../helpers/global-database.ts";
import { scramVerifies } from "../helpers/scram-verifies.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/test-database.ts";

// The real Powertools reader and its cache, over a Secrets Manager that answers the secret's current version.
process.env.AWS_REGION ??= "us-east-1";
const ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:app-AbCdEf";
const role = `chat_app_r_${randomBytes(5).toString("hex")}`;
let current = "password-before-rotation";
const secrets = mockClient(SecretsManagerClient);
secrets
  .on(GetSecretValueCommand)
  .callsFake(() => ({ ARN, SecretString: JSON.stringify({ username: role, password: current }) }));
const { grantAppRoleFromSecret } = await import("../../layers/chat/db/app-role.ts");

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(2);
});
afterAll(async () => {
  secrets.restore();
  await db?.drop(); // its grants first: they depend on the role
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP ROLE IF EXISTS ${role}`);
  await admin.end();
});

const verifier = async () =>
  (await db.pool.query("SELECT rolpassword FROM pg_authid WHERE rolname = $1", [role])).rows[0]
    ?.rolpassword as string;

describe("the deploy's grant of the application role", () => {
  it("sets the password the secret holds now, not one a warm sandbox read before a rotation", async () => {
    await grantAppRoleFromSecret(db.url, ARN); // a deploy
    expect(scramVerifies(await verifier(), "password-before-rotation")).toBe(true);
    // A single-user rotation: the role's password changes, then the secret's current version.
    await db.pool.query(`ALTER ROLE ${pg.escapeIdentifier(role)} PASSWORD 'password-after-rotation'`);
    current = "password-after-rotation";
    // The next deploy's migrations, in the same warm sandbox minutes later: setting the password from the first
    // read would lock every function out (the proxy logs in with the secret's current password).
    await grantAppRoleFromSecret(db.url, ARN);
    expect(scramVerifies(await verifier(), "password-after-rotation")).toBe(true);
  });
});
