import type { IncomingHttpHeaders } from "node:http";

/**
 * What keeps web pages the developer visits away from the runner. A page can send it a simple POST (no CORS
 * preflight) and, by rebinding its own host name to 127.0.0.1, read the answers too. Rebinding leaves the page's
 * host name in `Host`: only loopback names, the address the runner binds to and LOCAL_ALLOWED_HOSTS are answered.
 * The Lambda Invoke API, which runs any function with any event, also wants what the AWS SDK sends and a
 * browser cannot send without a preflight nobody answers: SigV4's `Authorization`, and no `Origin`.
 */

/** `example:8000` → `example`, `[::1]:8000` → `[::1]`; undefined if it is not a host (and optional port). */
function hostName(value: string): string | undefined {
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::\d{1,5})?$/i.exec(value.trim());
  return m?.[1]?.toLowerCase();
}

const isLoopback = (name: string) =>
  name === "localhost" || name === "[::1]" || /^127(\.\d{1,3}){3}$/.test(name);

const HOST_REFUSED =
  "Forbidden: the local runner answers only requests to a loopback host, its HOST or one in LOCAL_ALLOWED_HOSTS";

/** Why the Lambda Invoke API refuses a request, or undefined if it looks like the AWS SDK's. */
function invokeApiRefusal(headers: IncomingHttpHeaders): string | undefined {
  if (headers.origin !== undefined)
    return "Forbidden: the local runner's Lambda Invoke API refuses browser requests (they carry an Origin header)";
  if (!/^AWS4-HMAC-SHA256\s+\S/.test(headers.authorization ?? ""))
    return "Forbidden: the local runner's Lambda Invoke API wants the AWS SDK's Signature Version 4 Authorization header";
  return undefined;
}

/**
 * Why the runner refuses a request, or undefined. `Host` may name a loopback host, `bindHost` (as HOST gives
 * it, e.g. 0.0.0.0: the runner's own URL, and so its health canary, uses it) or one of `allowed` (host names; a
 * port is ignored). `invokeApi`: the request is for the Lambda Invoke API.
 */
export function requestGuard(
  bindHost: string,
  allowed: readonly string[],
): (headers: IncomingHttpHeaders, invokeApi: boolean) => string | undefined {
  const names = new Set<string>();
  for (const entry of [bindHost, ...allowed]) {
    // a bare IPv6 address (as HOST takes it) is bracketed in a Host header
    const name = hostName(/^[^[]*:.*:/.test(entry) ? `[${entry}]` : entry);
    if (name) names.add(name);
  }
  return (headers, invokeApi) => {
    const name = headers.host === undefined ? undefined : hostName(headers.host);
    if (name === undefined || !(isLoopback(name) || names.has(name))) return HOST_REFUSED;
    return invokeApi ? invokeApiRefusal(headers) : undefined;
  };
}
