import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres } from "../../local/embedded-postgres.ts";
import {
  newPassword,
  PASSWORD_FILE,
  PENDING_PASSWORD_FILE,
  scramVerifier,
} from "../../local/embedded-postgres-password.ts";

/**
 * The embedded cluster `npm start` runs listens on 127.0.0.1, where every local OS user can reach it: its
 * superuser password must be its own, readable by the runner's user only, and the old fixed one must not work.
 */
const FIXED = "postgres";
const dirs: string[] = [];
const lines: string[] = [];
const log = (_level: string, message: string, fields?: Record<string, unknown>) =>
  lines.push(`${message} ${JSON.stringify(fields ?? {})}`);

const scratch = async () => {
  const dir = await mkdtemp(join(tmpdir(), "local-pg-password-"));
  dirs.push(dir);
  return dir;
};
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const kept = async (dataDir: string) => (await readFile(join(dataDir, PASSWORD_FILE), "utf8")).trim();
const modeOf = async (dataDir: string) => (await stat(join(dataDir, PASSWORD_FILE))).mode & 0o777;

/** Logs in as superuser over TCP: the SQLSTATE of a refusal, or "ok". */
async function logIn(port: number, password: string, database = "postgres"): Promise<string> {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database });
  try {
    await client.connect();
    return "ok";
  } catch (err) {
    return String((err as { code?: string }).code ?? err);
  } finally {
    await client.end().catch(() => {});
  }
}

async function sql<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

describe("the embedded Postgres's superuser password", () => {
  it("is random per cluster, kept with mode 0600 in its data folder and reused; the fixed one is refused", async () => {
    const [dirA, dirB] = [await scratch(), await scratch()];
    const [a, b] = await Promise.all([
      startEmbeddedPostgres({ dataDir: dirA, log }),
      startEmbeddedPostgres({ dataDir: dirB, log }),
    ]);
    try {
      for (const [dir, cluster] of [
        [dirA, a],
        [dirB, b],
      ] as const) {
        expect(await modeOf(dir)).toBe(0o600);
        const password = await kept(dir);
        expect(password.length).toBeGreaterThanOrEqual(32);
        expect(decodeURIComponent(new URL(cluster.url).password)).toBe(password);
        expect(await logIn(cluster.port, password)).toBe("ok");
        expect(await logIn(cluster.port, FIXED)).toBe("28P01"); // invalid_password
      }
      expect(await kept(dirA)).not.toBe(await kept(dirB));
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }

    const again = await startEmbeddedPostgres({ dataDir: dirA, log });
    try {
      expect(decodeURIComponent(new URL(again.url).password)).toBe(await kept(dirA));
      expect((await sql<{ ok: number }>(again.url, "SELECT 1 AS ok"))[0]?.ok).toBe(1);
    } finally {
      await again.stop();
    }
    expect(lines.join("\n")).not.toContain(await kept(dirA));
    expect(lines.join("\n")).not.toContain(await kept(dirB));
  }, 120_000);

  it("replaces the fixed password of a cluster an earlier version made, keeping its data", async () => {
    const dataDir = await scratch();
    const first = await startEmbeddedPostgres({ dataDir, log });
    try {
      await sql(first.url, "CREATE TABLE kept_rows AS SELECT 42 AS n");
      // what earlier versions left: the fixed password, set by initdb (stored as SCRAM), and no password file
      await sql(first.url, `ALTER ROLE postgres PASSWORD '${FIXED}'`);
      const [row] = await sql<{ v: string }>(
        first.url.replace(/:[^:@]*@/, `:${FIXED}@`),
        "SELECT rolpassword AS v FROM pg_authid WHERE rolname = 'postgres'",
      );
      // the verifier the runner sends in its ALTER ROLE is the one Postgres makes itself
      const [, iterations, salt] = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(row?.v ?? "") ?? [];
      expect(scramVerifier(FIXED, Buffer.from(salt ?? "", "base64"), Number(iterations))).toBe(row?.v);
    } finally {
      await first.stop();
    }
    await rm(join(dataDir, PASSWORD_FILE));
    lines.length = 0;

    const upgraded = await startEmbeddedPostgres({ dataDir, log });
    try {
      const password = await kept(dataDir);
      expect(await modeOf(dataDir)).toBe(0o600);
      expect(password).not.toBe(FIXED);
      expect(decodeURIComponent(new URL(upgraded.url).password)).toBe(password);
      expect(await logIn(upgraded.port, FIXED)).toBe("28P01");
      expect(await sql<{ n: number }>(upgraded.url, "SELECT n FROM kept_rows")).toEqual([{ n: 42 }]);
      expect(lines.join("\n")).toMatch(/replaced the fixed superuser password/);
      expect(lines.join("\n")).not.toContain(password);
    } finally {
      await upgraded.stop();
    }
  }, 120_000);

  it("starts after a replacement of the fixed password was cut short, before or after the cluster got the new one", async () => {
    const dataDir = await scratch();
    const pendingFile = join(dataDir, PENDING_PASSWORD_FILE);
    const first = await startEmbeddedPostgres({ dataDir, log });
    try {
      await sql(first.url, "CREATE TABLE kept_rows AS SELECT 7 AS n");
      await sql(first.url, `ALTER ROLE postgres PASSWORD '${FIXED}'`);
    } finally {
      await first.stop();
    }
    // cut short before the ALTER: the cluster still has the fixed password, the pending file one it never got
    await rm(join(dataDir, PASSWORD_FILE));
    await writeFile(pendingFile, "never-given-to-the-cluster-000000\n", { mode: 0o600 });
    const before = await startEmbeddedPostgres({ dataDir, log });
    let given: string;
    try {
      given = await kept(dataDir);
      expect(given).not.toMatch(/never-given/);
      expect(await logIn(before.port, FIXED)).toBe("28P01");
      expect(await sql<{ n: number }>(before.url, "SELECT n FROM kept_rows")).toEqual([{ n: 7 }]);
      // cut short after the ALTER: the cluster has the new password, kept only as pending
      const next = newPassword();
      await sql(before.url, `ALTER ROLE postgres PASSWORD '${next}'`);
      await rm(join(dataDir, PASSWORD_FILE));
      await writeFile(pendingFile, `${next}\n`, { mode: 0o600 });
      given = next;
    } finally {
      await before.stop();
    }
    const after = await startEmbeddedPostgres({ dataDir, log });
    try {
      expect(await kept(dataDir)).toBe(given);
      expect(decodeURIComponent(new URL(after.url).password)).toBe(given);
      await expect(stat(pendingFile)).rejects.toMatchObject({ code: "ENOENT" });
      expect(await sql<{ n: number }>(after.url, "SELECT n FROM kept_rows")).toEqual([{ n: 7 }]);
      // cut short while writing the pending file: empty, and the cluster still has the fixed password
      await sql(after.url, `ALTER ROLE postgres PASSWORD '${FIXED}'`);
    } finally {
      await after.stop();
    }
    await rm(join(dataDir, PASSWORD_FILE));
    await writeFile(pendingFile, "", { mode: 0o600 });
    const emptied = await startEmbeddedPostgres({ dataDir, log });
    try {
      expect(await logIn(emptied.port, FIXED)).toBe("28P01");
      expect(decodeURIComponent(new URL(emptied.url).password)).toBe(await kept(dataDir));
      expect(await sql<{ n: number }>(emptied.url, "SELECT n FROM kept_rows")).toEqual([{ n: 7 }]);
    } finally {
      await emptied.stop();
    }
  }, 240_000);
});
