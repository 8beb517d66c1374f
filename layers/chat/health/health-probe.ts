export interface ProbeResult {
  ok: boolean;
  /** HTTP status, or 0 when the request itself failed (DNS, TLS, timeout). */
  status: number;
  latency_ms: number;
  /** The body's "status" field ("ok" | "degraded" | "down"), when it answered JSON. */
  health?: string;
}

/** One bounded GET of a /health URL, as a client would make it. ok = 200 and not "down". */
export async function probeHealth(
  url: string,
  timeoutMs: number,
  fetchImpl: typeof fetch = fetch,
): Promise<ProbeResult> {
  const started = performance.now();
  try {
    const res = await fetchImpl(url, {
      signal: AbortSignal.timeout(timeoutMs),
      headers: { "user-agent": "chat-health-canary" },
    });
    // A body that is not JSON is an answer (health unknown); one that never arrived whole (timed out, cut off) is not.
    const body = (await res.json().catch((err: unknown) => {
      if (err instanceof SyntaxError) return null;
      throw err;
    })) as { status?: string } | null;
    const latency_ms = Math.round(performance.now() - started);
    return {
      ok: res.status === 200 && body?.status !== "down",
      status: res.status,
      latency_ms,
      health: body?.status,
    };
  } catch {
    return { ok: false, status: 0, latency_ms: Math.round(performance.now() - started) };
  }
}
