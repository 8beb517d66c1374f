import { createHash } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";

/** One quota: at most `limit` requests in any `windowSeconds`-long window, per partition. */
export interface RatePolicy {
  /** The policy's name in the RateLimit / RateLimit-Policy fields (an sf-string: plain ASCII, no quotes). */
  readonly name: string;
  readonly limit: number;
  readonly windowSeconds: number;
}

/** One policy applied to one partition of it (a hashed token, a client address). */
export interface RateCheck {
  readonly policy: RatePolicy;
  /** The partition key; never a secret (tokens are hashed first, see tokenPartition). */
  readonly key: string;
}

export interface PolicyResult {
  readonly policy: RatePolicy;
  /** This policy admits the request (its count was below the limit). */
  readonly allowed: boolean;
  /** Requests this partition may still make now (after this one, when the request went through). */
  readonly remaining: number;
  /**
   * Milliseconds until this partition regains a unit: until then it can make no more than `remaining`
   * requests. For a denied policy, how long the client must wait.
   */
  readonly resetMs: number;
}

export interface RateDecision {
  readonly allowed: boolean;
  readonly results: readonly PolicyResult[];
  /** Whole seconds to wait before retrying (≥ 1) when denied; 0 when allowed. */
  readonly retryAfterSeconds: number;
  /** Which limiter decided: the shared Redis one, this process's fallback, or none (nothing to check). */
  readonly source: "redis" | "local" | "none";
}

export const TOKEN_POLICY = "per-token";
export const IP_POLICY = "per-ip";

/** The policies in force; a limit of 0 turns that policy off. */
export function policiesFromLimits(limits: {
  RATE_LIMIT_PER_TOKEN: number;
  RATE_LIMIT_PER_IP: number;
  RATE_LIMIT_WINDOW_SECONDS: number;
}): { token: RatePolicy | null; ip: RatePolicy | null } {
  const w = limits.RATE_LIMIT_WINDOW_SECONDS;
  return {
    token:
      limits.RATE_LIMIT_PER_TOKEN > 0
        ? { name: TOKEN_POLICY, limit: limits.RATE_LIMIT_PER_TOKEN, windowSeconds: w }
        : null,
    ip:
      limits.RATE_LIMIT_PER_IP > 0
        ? { name: IP_POLICY, limit: limits.RATE_LIMIT_PER_IP, windowSeconds: w }
        : null,
  };
}

/**
 * The token's partition key: a domain-separated SHA-256 (so it is neither the token nor the
 * `sessions.token_hash` that Postgres stores), 128 bits in base64url.
 */
export function tokenPartition(token: string): string {
  return createHash("sha256")
    .update("chat-backend/rate-limit/v1\n", "utf8")
    .update(token, "utf8")
    .digest("base64url")
    .slice(0, 22);
}

/**
 * The client address's partition key: an IPv4 address as it is (also when IPv4-mapped), an IPv6
 * address by its /64 prefix (one subscriber usually holds a whole /64). Anything else: null.
 */
export function ipPartition(sourceIp: string | undefined): string | null {
  if (!sourceIp) return null;
  const ip = sourceIp.trim();
  if (isIPv4(ip)) return ip;
  if (!isIPv6(ip)) return null;
  const groups = expandIPv6(ip);
  if (!groups) return null;
  // ::ffff:a.b.c.d is an IPv4 client
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const v4 = groups[6] as number;
    const v4b = groups[7] as number;
    return `${v4 >> 8}.${v4 & 0xff}.${v4b >> 8}.${v4b & 0xff}`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(":")}::/64`;
}

/** "2001:db8::1" → eight 16-bit groups (handles "::" and a dotted IPv4 tail); null if malformed. */
export function expandIPv6(ip: string): number[] | null {
  let text = ip.split("%")[0] as string; // drop a zone id
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  const last = text.slice(lastColon + 1);
  if (last.includes(".")) {
    if (!isIPv4(last)) return null;
    const [a, b, c, d] = last.split(".").map(Number) as [number, number, number, number];
    tail.push((a << 8) | b, (c << 8) | d);
    text = text.slice(0, lastColon + 1); // "::ffff:" or "::"
    if (text.endsWith(":") && !text.endsWith("::")) text = text.slice(0, -1);
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const parts = (s: string) => (s === "" ? [] : s.split(":"));
  const head = parts(halves[0] as string);
  const want = 8 - tail.length;
  let hex = head;
  if (halves.length === 2) {
    const rest = parts(halves[1] as string);
    const fill = want - head.length - rest.length;
    if (fill < 1) return null;
    hex = [...head, ...Array<string>(fill).fill("0"), ...rest];
  }
  if (hex.length !== want) return null;
  const groups: number[] = [];
  for (const h of hex) {
    if (!/^[0-9a-f]{1,4}$/i.test(h)) return null;
    groups.push(Number.parseInt(h, 16));
  }
  return [...groups, ...tail];
}
