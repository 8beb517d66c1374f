import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  initdbPasswordFile,
  newPassword,
  PASSWORD_FILE,
  readPassword,
  savePassword,
  scramVerifier,
} from "../../local/embedded-postgres-password.ts";

const dirs: string[] = [];
const scratch = async () => {
  const dir = await mkdtemp(join(tmpdir(), "local-pg-password-unit-"));
  dirs.push(dir);
  return dir;
};
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe("the embedded cluster's password file", () => {
  it("makes a new random, URL-safe password each time", () => {
    const passwords = new Set(Array.from({ length: 50 }, newPassword));
    expect(passwords.size).toBe(50);
    for (const p of passwords) expect(p).toMatch(/^[A-Za-z0-9_-]{32}$/);
  });

  it("keeps it with mode 0600, reads it back, and never overwrites it", async () => {
    const dir = await scratch();
    expect(await readPassword(dir)).toBeUndefined();
    await savePassword(dir, "first");
    expect((await stat(join(dir, PASSWORD_FILE))).mode & 0o777).toBe(0o600);
    expect(await readPassword(dir)).toBe("first");
    await expect(savePassword(dir, "second")).rejects.toThrow(/EEXIST/);
    expect(await readPassword(dir)).toBe("first");
  });

  it("refuses an empty password file rather than logging in without a password", async () => {
    const dir = await scratch();
    await writeFile(join(dir, PASSWORD_FILE), "\n");
    await expect(readPassword(dir)).rejects.toThrow(/is empty/);
  });

  it("hands initdb the password in a folder only its owner can enter, and removes it", async () => {
    const file = await initdbPasswordFile("secret");
    try {
      expect(await readFile(file.path, "utf8")).toBe("secret\n");
      expect((await stat(file.path)).mode & 0o777).toBe(0o600);
      expect((await stat(dirname(file.path))).mode & 0o777).toBe(0o700);
    } finally {
      await file.remove();
    }
    expect(existsSync(dirname(file.path))).toBe(false);
  });

  it("makes the SCRAM-SHA-256 verifier Postgres makes (here: PostgreSQL's own for 'pencil')", () => {
    const fromPostgres =
      "SCRAM-SHA-256$4096:cNsUJQaNkqnJerYaXuqj7w==$ebrQJKQMJ9u+FN0Tgjbc0fr/7xOLY6uAzKjxKWUErQQ=:dgkimW6R/sAUcOti9c7/EkjOADBcn83l+jCJNVullk0=";
    const salt = Buffer.from("cNsUJQaNkqnJerYaXuqj7w==", "base64");
    expect(scramVerifier("pencil", salt, 4096)).toBe(fromPostgres);
    expect(scramVerifier("pencil")).not.toContain("pencil");
  });
});
