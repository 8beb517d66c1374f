import { createCipheriv, createDecipheriv, createHash, createHmac, createSecretKey } from "node:crypto";
import { ChatError } from "../chat/errors.ts";
import { pooledRandomBytes } from "../random.ts";
import type { IdempotencyCompletion, Queryable } from "./chat-store.ts";

/**
 * Idempotency-Key records in Postgres. A request first claims its key (in_progress); the change that
 * completes it writes the response in the same statement as the change itself, so "stored" and
 * "replayable" cannot disagree. The key is stored hashed and the response encrypted with a key derived
 * from it: a sessions/create response holds the session token, which must never sit in the database readable.
 */
export interface IdempotencyRequest {
  scope: string;
  key: string;
  /** Hash of everything that makes two requests "the same" (body, session): requestHash(), keyed by the key. */
  requestHash: string;
  /** The previous release's plain hash of the same (legacyRequestHash), for the records it wrote. */
  legacyRequestHash?: string;
}

/**
 * `token`: the claim's own `locked_until`, exactly (its text form): a later claim of the same key (a takeover
 * after the lock ran out) has another, so a release can tell its own claim from the one that replaced it.
 */
export type ClaimOutcome =
  | { kind: "claimed"; token: string }
  | { kind: "replay"; statusCode: number; response: unknown };

const CLAIM = `
INSERT INTO idempotency_records (scope, idempotency_key, request_hash, status, locked_until, expires_at)
VALUES ($1, $2, $3, 'in_progress', now() + make_interval(secs => $4), now() + make_interval(secs => $5))
ON CONFLICT (scope, idempotency_key) DO UPDATE
   SET request_hash = EXCLUDED.request_hash, status = 'in_progress', status_code = NULL, response = NULL,
       locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at, session_id = NULL
 WHERE idempotency_records.expires_at < now()
    OR (idempotency_records.status = 'in_progress' AND idempotency_records.locked_until < now())
RETURNING locked_until::text AS token`;

const hashKey = (req: IdempotencyRequest) =>
  createHash("sha256").update(`${req.scope}\n${req.key}`).digest("hex");
// A KeyObject, not the raw bytes: createCipheriv re-checks a Buffer key's type the slow way (~2× the cipher's cost).
const cipherKey = (req: IdempotencyRequest) =>
  createSecretKey(
    createHash("sha256").update(`chat-idempotency-response\n${req.scope}\n${req.key}`).digest(),
  );

export interface ClaimOptions {
  ttlSeconds: number;
  /** How long a claim blocks others: past it, a crashed request's key can be taken over. */
  lockSeconds: number;
  /** How long a duplicate waits for the first request to finish before answering 409. */
  waitMs: number;
}

export async function claimIdempotencyKey(
  db: Queryable,
  req: IdempotencyRequest,
  opts: ClaimOptions,
): Promise<ClaimOutcome> {
  const deadline = Date.now() + opts.waitMs;
  // A duplicate polls the record while the first request runs: 25 ms, doubling to 400 ms (≈ 10 polls in 2 s,
  // not 80: each poll is two statements, and a client can send many duplicates of a slow, costly post).
  let pause = 25;
  for (;;) {
    const claimed = await db.query({
      name: "idempotency_claim",
      text: CLAIM,
      values: [req.scope, hashKey(req), req.requestHash, opts.lockSeconds, opts.ttlSeconds],
    });
    if (claimed.rowCount) return { kind: "claimed", token: claimed.rows[0].token as string };
    const res = await db.query({
      name: "idempotency_read",
      text: `SELECT request_hash, status, status_code, response,
                    greatest(1, ceil(extract(epoch FROM locked_until - now())))::int AS lock_left_seconds
               FROM idempotency_records WHERE scope = $1 AND idempotency_key = $2`,
      values: [req.scope, hashKey(req)],
    });
    const row = res.rows[0];
    if (!row) continue; // expired and removed between the two statements: claim again
    if (row.request_hash !== req.requestHash && row.request_hash !== req.legacyRequestHash) {
      throw new ChatError("idempotency_key_reused", "this Idempotency-Key was used with a different request");
    }
    // withdrawn (chat-store.ts WITHDRAW_REPLAYS): held as a claim till it expires, with the status code it completed with
    if (row.status === "in_progress" && row.status_code !== null)
      throw new ChatError(
        "replay_withdrawn",
        "the request with this Idempotency-Key succeeded, but a message it posted was edited or deleted since: its response, which held the old text, is no longer kept",
      );
    if (row.status === "completed") {
      return { kind: "replay", statusCode: row.status_code as number, response: decrypt(req, row.response) };
    }
    if (Date.now() >= deadline) {
      // Retry-After: until the claim ends (the first request finishes, or its lock runs out and a retry takes over)
      throw new ChatError(
        "request_in_progress",
        "a request with this Idempotency-Key is still being processed",
        {
          retryAfterSeconds: row.lock_left_seconds as number,
        },
      );
    }
    await new Promise((r) => setTimeout(r, Math.min(pause, Math.max(1, deadline - Date.now()))));
    pause = Math.min(pause * 2, 400);
  }
}

/**
 * Gives the key back after a failure, so the client's retry runs instead of waiting out the lock; only this
 * claim (`token`): if its lock ran out and a retry took the key over, that retry's claim stays.
 */
export async function releaseIdempotencyKey(
  db: Queryable,
  req: IdempotencyRequest,
  token: string,
): Promise<void> {
  await db.query({
    name: "idempotency_release",
    text: `DELETE FROM idempotency_records
            WHERE scope = $1 AND idempotency_key = $2 AND status = 'in_progress' AND locked_until = $3::timestamptz`,
    values: [req.scope, hashKey(req), token],
  });
}

/**
 * The record the change statement writes: with `claim`, it creates the completed record itself (the fast
 * path: no claim round trip); otherwise it completes the claim taken by claimIdempotencyKey.
 */
export function idempotencyCompletion(
  req: IdempotencyRequest,
  statusCode: number,
  response: unknown,
  opts: { claim: true; ttlSeconds: number } | { claim: false; token: string; ttlSeconds: number },
): IdempotencyCompletion {
  return {
    scope: req.scope,
    keyHash: hashKey(req),
    statusCode,
    response: encrypt(req, response),
    claim: opts.claim,
    requestHash: req.requestHash,
    ttlSeconds: opts.ttlSeconds,
    ...(opts.claim ? {} : { token: opts.token }),
  };
}

/** The change statement's own claim found a record for the key (a duplicate, a claim, an expired one). */
export function isIdempotencyConflict(err: unknown): boolean {
  const e = err as { code?: string; constraint?: string };
  return e?.code === "23505" && e.constraint === "idempotency_records_pkey";
}

function encrypt(req: IdempotencyRequest, value: unknown): { iv: string; tag: string; data: string } {
  const iv = pooledRandomBytes(12);
  const c = createCipheriv("aes-256-gcm", cipherKey(req), iv);
  const data = Buffer.concat([c.update(JSON.stringify(value), "utf8"), c.final()]);
  return { iv: iv.toString("base64"), tag: c.getAuthTag().toString("base64"), data: data.toString("base64") };
}

function decrypt(req: IdempotencyRequest, box: { iv: string; tag: string; data: string }): unknown {
  const d = createDecipheriv("aes-256-gcm", cipherKey(req), Buffer.from(box.iv, "base64"));
  d.setAuthTag(Buffer.from(box.tag, "base64"));
  const plain = Buffer.concat([d.update(Buffer.from(box.data, "base64")), d.final()]);
  return JSON.parse(plain.toString("utf8"));
}

/**
 * What a record stores to tell a retry from another request with the same key: an HMAC keyed by the scope and the
 * Idempotency-Key (which only the client holds, as for the stored response's cipher). A plain hash let anyone who
 * reads the table confirm a guess of what a request held, a deleted or edited message's text included, for as long
 * as the record lives (24 h).
 */
export function requestHash(parts: unknown, req: Pick<IdempotencyRequest, "scope" | "key">): string {
  return createHmac("sha256", `chat-idempotency-request\n${req.scope}\n${req.key}`)
    .update(JSON.stringify(parts))
    .digest("hex");
}

/** The previous release's plain SHA-256: its records (24 h at most) still replay. Drop it in the next release. */
export function legacyRequestHash(parts: unknown): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}
