import { createHash, createHmac, pbkdf2Sync } from "node:crypto";

/** Whether a SCRAM-SHA-256 verifier (pg_authid.rolpassword) is the one of `password` (RFC 5802 / 7677). */
export function scramVerifies(verifier: string, password: string): boolean {
  const [, iterations, salt, storedKey, serverKey] =
    verifier.match(/^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/) ?? [];
  const salted = pbkdf2Sync(password, Buffer.from(salt ?? "", "base64"), Number(iterations), 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  return (
    createHash("sha256").update(clientKey).digest("base64") === storedKey &&
    createHmac("sha256", salted).update("Server Key").digest("base64") === serverKey
  );
}
