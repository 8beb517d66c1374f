import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { chown, mkdtemp, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The embedded cluster's superuser password: random per cluster, kept in its data folder, readable by its owner
 * only. A fixed password would let any local OS user log in over TCP as superuser (and run programs with COPY).
 */
export const PASSWORD_FILE = "local-runner-password";
/**
 * A replacement password kept before the cluster is given it, renamed to PASSWORD_FILE after: a start cut short
 * between the two finds the cluster's password in one file or the other (or still the legacy one).
 */
export const PENDING_PASSWORD_FILE = `${PASSWORD_FILE}.new`;
/** What clusters initialised before PASSWORD_FILE existed were given; only used to replace it. */
export const LEGACY_PASSWORD = "postgres";

/** 32 URL-safe characters (192 bits): no escaping in a connection URL, and SASLprep leaves it as it is. */
export const newPassword = (): string => randomBytes(24).toString("base64url");

/** The password kept in `dataDir`, or undefined if the cluster has no such file. */
export async function readPassword(dataDir: string, file = PASSWORD_FILE): Promise<string | undefined> {
  try {
    const password = (await readFile(join(dataDir, file), "utf8")).trim();
    if (!password) throw new Error(`${join(dataDir, file)} is empty`);
    return password;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Creates a password file (mode 0600 from the start; never overwrites one), on disk before it returns. */
export async function savePassword(dataDir: string, password: string, name = PASSWORD_FILE): Promise<void> {
  const handle = await open(join(dataDir, name), "wx", 0o600);
  try {
    await handle.chmod(0o600); // the mode given at creation is narrowed by the umask, never widened: make it exact
    await handle.writeFile(`${password}\n`);
    await handle.sync(); // a power loss must not leave the cluster with a password no file holds
  } finally {
    await handle.close();
  }
  await syncDirectory(dataDir);
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export const removePassword = (dataDir: string, name = PASSWORD_FILE) =>
  rm(join(dataDir, name), { force: true });

/** The pending password is the cluster's now: it becomes PASSWORD_FILE. */
export async function promotePendingPassword(dataDir: string): Promise<void> {
  await rename(join(dataDir, PENDING_PASSWORD_FILE), join(dataDir, PASSWORD_FILE));
  await syncDirectory(dataDir);
}

/**
 * The pending password, if a replacement left one that can be tried: an empty or unreadable file (a start cut short
 * while writing it, before the cluster was given it) is dropped, and the legacy password is tried instead.
 */
export async function readPendingPassword(dataDir: string): Promise<string | undefined> {
  try {
    return await readPassword(dataDir, PENDING_PASSWORD_FILE);
  } catch {
    await removePassword(dataDir, PENDING_PASSWORD_FILE);
    return undefined;
  }
}

export interface InitdbPasswordFile {
  path: string;
  remove(): Promise<void>;
}

/**
 * A file holding `password` for initdb's --pwfile, in a fresh folder (mode 0700) that only `owner` (the OS user
 * initdb runs as; the current one if undefined) can enter. The data folder cannot hold it: initdb wants it empty.
 */
export async function initdbPasswordFile(
  password: string,
  owner?: { uid: number; gid: number },
): Promise<InitdbPasswordFile> {
  const dir = await mkdtemp(join(tmpdir(), "local-pg-init-"));
  const path = join(dir, "pwfile");
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    await writeFile(path, `${password}\n`, { mode: 0o600 });
    if (owner) {
      await chown(path, owner.uid, owner.gid);
      await chown(dir, owner.uid, owner.gid);
    }
  } catch (err) {
    await remove();
    throw err;
  }
  return { path, remove };
}

/**
 * The SCRAM-SHA-256 verifier Postgres stores for `password` (RFC 5802/7677, as libpq's PQencryptPasswordConn
 * makes it), so that an ALTER ROLE carries no password that a log of the statement could show.
 */
export function scramVerifier(password: string, salt = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, "sha256");
  const hmac = (text: string) => createHmac("sha256", salted).update(text).digest();
  const storedKey = createHash("sha256").update(hmac("Client Key")).digest();
  const serverKey = hmac("Server Key");
  const b64 = (b: Buffer) => b.toString("base64");
  return `SCRAM-SHA-256$${iterations}:${b64(salt)}$${b64(storedKey)}:${b64(serverKey)}`;
}
