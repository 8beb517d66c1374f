import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { migrate } from "../../layers/chat/db/migrate.ts";
import { startEmbeddedPostgres } from "../../local/embedded-postgres.ts";
import { SIGV4_AUTHORIZATION } from "../helpers/runner-process.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const silent = () => {};
const alive = (pid: number | undefined) => pid !== undefined && existsSync(`/proc/${pid}`);
const dirs: string[] = [];
const scratch = async () => {
  const dir = await mkdtemp(join(tmpdir(), "local-pg-test-"));
  dirs.push(dir);
  return dir;
};

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe("startEmbeddedPostgres", () => {
  it("initialises, serves a migrated database, stops, and restarts on the same folder", async () => {
    const dataDir = await scratch();
    const first = await startEmbeddedPostgres({ dataDir, log: silent });
    let pid = first.pid;
    try {
      // the cluster's own random password (tests/e2e/local-embedded-pg-password.test.ts)
      expect(first.url).toMatch(
        new RegExp(`^postgres://postgres:[\\w-]{32}@127\\.0\\.0\\.1:${first.port}/chat$`),
      );
      expect(alive(first.pid)).toBe(true);
      expect(await migrate(first.url)).toContain("1732600000000_initial-schema");
      const client = new pg.Client({ connectionString: first.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ v: string; n: string }>(
          "SELECT current_setting('server_version_num') AS v, (SELECT count(*) FROM sessions) AS n",
        );
        expect(Number(rows[0]?.v)).toBeGreaterThanOrEqual(180000);
        expect(rows[0]?.n).toBe("0");
      } finally {
        await client.end();
      }
    } finally {
      await first.stop();
    }
    expect(alive(pid)).toBe(false);

    const second = await startEmbeddedPostgres({ dataDir, log: silent });
    pid = second.pid;
    try {
      expect(await migrate(second.url)).toEqual([]); // same cluster, already migrated
      expect(new URL(second.url).password).toBe(new URL(first.url).password);
    } finally {
      await second.stop();
    }
    expect(alive(pid)).toBe(false);
    expect(existsSync(join(dataDir, "postmaster.pid"))).toBe(false);
  }, 90_000);

  it("initialises under a LANG naming a locale the machine lacks, and collates as C whatever the shell's", async () => {
    // initdb takes its locale from the environment: a shell's LANG carried over SSH or set in a dotfile often names
    // one the machine never generated, and initdb then refused to create the cluster.
    const saved = { LANG: process.env.LANG, LC_ALL: process.env.LC_ALL, LC_COLLATE: process.env.LC_COLLATE };
    process.env.LANG = "xx_XX.UTF-8";
    delete process.env.LC_ALL;
    delete process.env.LC_COLLATE;
    const dataDir = await scratch();
    const server = await startEmbeddedPostgres({ dataDir, log: silent }).finally(() => {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    });
    try {
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      try {
        const { rows } = await client.query(
          "SELECT datcollate, datctype FROM pg_database WHERE datname = current_database()",
        );
        expect(rows[0]).toEqual({ datcollate: "C", datctype: "C" });
      } finally {
        await client.end();
      }
    } finally {
      await server.stop();
    }
  }, 90_000);
});

/** Runs `node local/main.ts` and resolves with its URL once it listens. */
function startMain(
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, ["local/main.ts"], {
    cwd: REPO,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`main.ts did not start:\n${out}`)), 60_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve({ child, url: m[1], output: () => out });
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`main.ts exited with ${code}:\n${out}`));
    });
  });
}

describe("npm start (local/main.ts) with the embedded Postgres", () => {
  it("starts, serves HTTP and the Invoke API, and stops on SIGTERM leaving no process behind", async () => {
    const dataDir = await scratch();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: "0",
      LOCAL_PG_DIR: dataDir,
      LOCAL_SCHEDULES: "off",
    };
    for (const name of ["DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS", "MSK_CLUSTER_ARN", "LOCAL_PG_PORT"])
      delete env[name];
    const { child, url, output } = await startMain(env);
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    let postmaster: number | undefined;
    try {
      expect(output()).toMatch(/postgres:\s+embedded/);
      expect(output()).toMatch(/redis:\s+off/);
      expect(output()).toMatch(/kafka:\s+off/);
      postmaster = Number((await readFile(join(dataDir, "postmaster.pid"), "utf8")).split("\n")[0]);
      expect(alive(postmaster)).toBe(true);

      const missing = await fetch(`${url}/no-such-route`);
      expect(missing.status).toBe(404);
      expect(await missing.json()).toMatchObject({ code: "route_not_found" });

      const dryRun = await fetch(`${url}/2015-03-31/functions/health/invocations`, {
        method: "POST",
        headers: { "x-amz-invocation-type": "DryRun", authorization: SIGV4_AUTHORIZATION },
        body: "{}",
      });
      expect(dryRun.status).toBe(204);

      if (existsSync(join(REPO, "functions/health.ts"))) {
        // The real handler reaches the embedded Postgres through DATABASE_URL.
        const health = await fetch(`${url}/health`);
        expect(health.status).toBe(200);
      }
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
    expect(alive(postmaster)).toBe(false);
    expect(existsSync(join(dataDir, "postmaster.pid"))).toBe(false);
  }, 90_000);
});
