import { Client } from "undici";
import { type LoopOptions, type LoopResult, runLoop } from "./closed-loop.ts";

export interface HttpRequestSpec {
  method: "GET" | "POST";
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface HttpLoadResult extends LoopResult {
  /** Values of one response header (e.g. x-cache), counted. */
  headerCounts: Record<string, number>;
  /** CPU the load generator (this process) spent per request, ms: the client's share of the HTTP cost. */
  clientCpuMsPerRequest: number;
}

/**
 * Closed-loop HTTP load with undici: one keep-alive connection per virtual user, no pipelining, every
 * response body read in full. Runs in the orchestrator process, never in the server's.
 */
export async function httpLoad(
  url: string,
  opts: LoopOptions,
  request: (worker: number, seq: number) => HttpRequestSpec,
  countHeader?: string,
): Promise<HttpLoadResult> {
  const clients = Array.from(
    { length: opts.concurrency },
    () =>
      new Client(url, {
        pipelining: 1,
        keepAliveTimeout: 60_000,
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      }),
  );
  const headerCounts: Record<string, number> = {};
  let cpu = process.cpuUsage();
  try {
    const onMeasureStart = () => {
      for (const k of Object.keys(headerCounts)) delete headerCounts[k];
      cpu = process.cpuUsage();
      opts.onMeasureStart?.();
    };
    const result = await runLoop({ ...opts, onMeasureStart }, async (w, seq) => {
      const spec = request(w, seq);
      const res = await (clients[w] as Client).request({
        method: spec.method,
        path: spec.path,
        headers: spec.headers,
        body: spec.body,
      });
      await res.body.text();
      if (countHeader) {
        const v = String(res.headers[countHeader] ?? "none");
        headerCounts[v] = (headerCounts[v] ?? 0) + 1;
      }
      return res.statusCode;
    });
    const used = process.cpuUsage(cpu);
    const clientCpuMsPerRequest =
      Math.round(((used.user + used.system) / 1000 / Math.max(1, result.n)) * 1000) / 1000;
    return { ...result, headerCounts: { ...headerCounts }, clientCpuMsPerRequest };
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
  }
}
