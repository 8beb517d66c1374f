import pg from "pg";
import { beforeEach, describe, expect, it, vi } from "vitest";

// The RDS secret as Secrets Manager holds it; a test replaces it to stand for a rotation.
let secret: Record<string, unknown>;
const readJsonSecret = vi.fn(async (_arn: string, _fresh?: boolean) => ({ ...secret }));
vi.mock("../../layers/chat/secrets.ts", () => ({ readJsonSecret }));
const { parseConfig } = await import("../../layers/chat/config.ts");
const { connectionConfig, databaseUrl } = await import("../../layers/chat/db/database-url.ts");

const ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf";
// a generated password may hold any printable character, `%` and URL delimiters included
const PASSWORD = "p%40ss w/rd:#?@x";

beforeEach(() => {
  readJsonSecret.mockClear();
  secret = { host: "db.internal", port: 6543, username: "chat app", password: PASSWORD, dbname: "chatdb" };
});

/** What pg connects with, given the URL (it parses it as it would to connect). */
function asPg(url: string) {
  const c = new pg.Client({ connectionString: url });
  return { host: c.host, port: c.port, user: c.user, database: c.database, password: c.password };
}

describe("the database URL from the RDS secret (migrations)", () => {
  it("gives pg the secret's port, user, password and database, through DATABASE_HOST when set", async () => {
    const direct = await databaseUrl(parseConfig({ DATABASE_SECRET_ARN: ARN }));
    expect(asPg(direct)).toEqual({
      host: "db.internal",
      port: 6543,
      user: "chat app",
      database: "chatdb",
      password: PASSWORD,
    });
    const proxied = await databaseUrl(
      parseConfig({ DATABASE_SECRET_ARN: ARN, DATABASE_HOST: "proxy.internal" }),
    );
    expect(asPg(proxied)).toMatchObject({ host: "proxy.internal", password: PASSWORD });
  });

  it("defaults to port 5432 and database chat when the secret names neither", async () => {
    secret = { host: "db.internal", username: "chat_app", password: "p" };
    const url = await databaseUrl(parseConfig({ DATABASE_SECRET_ARN: ARN }));
    expect(asPg(url)).toMatchObject({ port: 5432, database: "chat" });
  });

  it("reads the secret past its cache when asked (a retry after the password was refused)", async () => {
    await databaseUrl(parseConfig({ DATABASE_SECRET_ARN: ARN }), true);
    expect(readJsonSecret).toHaveBeenCalledWith(ARN, true);
  });
});

describe("the pool's connection settings from the RDS secret", () => {
  it("take the secret's port and database, and DATABASE_HOST over its host", async () => {
    const cfg = await connectionConfig(
      parseConfig({ DATABASE_SECRET_ARN: ARN, DATABASE_HOST: "proxy.internal" }),
    );
    expect(cfg).toMatchObject({ host: "proxy.internal", port: 6543, user: "chat app", database: "chatdb" });
    secret = { host: "db.internal", username: "chat_app", password: "p" };
    const bare = await connectionConfig(parseConfig({ DATABASE_SECRET_ARN: ARN }));
    expect(bare).toMatchObject({ host: "db.internal", port: 5432, database: "chat" });
  });

  it("read the password per new connection, so a rotated one is used without a restart", async () => {
    const cfg = await connectionConfig(parseConfig({ DATABASE_SECRET_ARN: ARN }));
    const password = cfg.password as () => Promise<string>;
    expect(await password()).toBe(PASSWORD);
    secret = { ...secret, password: "rotated" };
    expect(await password()).toBe("rotated");
  });
});
