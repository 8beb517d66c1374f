import type { PolicyResult } from "./policies.ts";

/**
 * The fields of draft-ietf-httpapi-ratelimit-headers (-11): each is a Structured Fields List whose items
 * are sf-strings naming a policy, with integer parameters.
 *   RateLimit-Policy: "per-token";q=120;w=60, "per-ip";q=600;w=60
 *   RateLimit: "per-token";r=0;t=17, "per-ip";r=583;t=60
 * q: quota, w: window (s); r: what is left now, t: seconds within which no more than r can be used.
 * No partition key (`pk`) is sent: it would be derived from the token.
 */
export function rateLimitHeaders(results: readonly PolicyResult[]): Record<string, string> {
  if (results.length === 0) return {};
  return {
    "ratelimit-policy": results
      .map((r) => `${sfString(r.policy.name)};q=${r.policy.limit};w=${r.policy.windowSeconds}`)
      .join(", "),
    ratelimit: results.map((r) => `${sfString(r.policy.name)};r=${r.remaining};t=${seconds(r)}`).join(", "),
  };
}

function seconds(r: PolicyResult): number {
  const t = Math.ceil(r.resetMs / 1000);
  // a refused request waits at least a second (Retry-After is ≥ 1 too)
  return r.allowed ? Math.max(0, t) : Math.max(1, t);
}

function sfString(s: string): string {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new Error(`policy name ${JSON.stringify(s)} is not an sf-string`);
  return `"${s.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}
