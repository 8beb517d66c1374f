import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** A session token: 256 random bits, base64url. Shown to the client once, stored only as a hash. */
export function newSessionToken(): string {
  return randomBytes(32).toString("base64url");
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Constant-time comparison of a presented token with a stored hash. */
export function tokenMatches(token: string, storedHashHex: string): boolean {
  const presented = createHash("sha256").update(token, "utf8").digest();
  const stored = Buffer.from(storedHashHex, "hex");
  return stored.length === presented.length && timingSafeEqual(presented, stored);
}
