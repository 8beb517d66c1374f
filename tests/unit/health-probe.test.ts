import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { probeHealth } from "../../layers/chat/health/health-probe.ts";

/** probeHealth against a real HTTP server whose answer each test picks by path. */
const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
  "/ok": (_q, r) => json(r, 200, { status: "ok" }),
  "/degraded": (_q, r) => json(r, 200, { status: "degraded" }),
  "/down-200": (_q, r) => json(r, 200, { status: "down" }),
  "/down-503": (_q, r) => json(r, 503, { status: "down" }),
  "/not-found": (_q, r) => json(r, 404, { title: "not found" }),
  "/html": (_q, r) => {
    r.writeHead(200, { "content-type": "text/html" });
    r.end("<h1>ok</h1>");
  },
  "/hang": () => {}, // never answers
  // the status line and part of the body, then nothing (a stuck response), or the connection cut
  "/stall": (_q, r) => {
    r.writeHead(200, { "content-type": "application/json" });
    r.write('{"status":');
  },
  "/cut": (q, r) => {
    r.writeHead(200, { "content-type": "application/json" });
    r.write('{"status":', () => q.socket.destroy());
  },
  "/agent": (q, r) => json(r, 200, { status: "ok", agent: q.headers["user-agent"] }),
};
function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

let server: Server;
let base: string;
beforeAll(async () => {
  server = createServer((req, res) => routes[req.url ?? ""]?.(req, res));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe("probeHealth", () => {
  it("is ok for 200 ok or degraded, and reports the body's status", async () => {
    expect(await probeHealth(`${base}/ok`, 2000)).toMatchObject({ ok: true, status: 200, health: "ok" });
    // degraded still serves chats: not a failure for the canary's alarm
    expect(await probeHealth(`${base}/degraded`, 2000)).toMatchObject({ ok: true, health: "degraded" });
  });

  it("is not ok when the body says down, even with a 200", async () => {
    expect(await probeHealth(`${base}/down-200`, 2000)).toMatchObject({
      ok: false,
      status: 200,
      health: "down",
    });
    expect(await probeHealth(`${base}/down-503`, 2000)).toMatchObject({
      ok: false,
      status: 503,
      health: "down",
    });
  });

  it("is not ok for another status, and a non-JSON body is no failure of the probe itself", async () => {
    expect(await probeHealth(`${base}/not-found`, 2000)).toMatchObject({ ok: false, status: 404 });
    const html = await probeHealth(`${base}/html`, 2000);
    expect(html).toMatchObject({ ok: true, status: 200 });
    expect(html.health).toBeUndefined();
  });

  it("reports a request that failed as status 0, not ok", async () => {
    // nothing listens on port 1 of localhost: connection refused
    const refused = await probeHealth("http://127.0.0.1:1/health", 2000);
    expect(refused).toEqual({ ok: false, status: 0, latency_ms: expect.any(Number) });
  });

  it("gives up on a server that never answers after timeoutMs", async () => {
    const result = await Promise.race([
      probeHealth(`${base}/hang`, 200),
      // generous upper bound: only a missing timeout reaches it
      new Promise((r) => setTimeout(() => r("no answer"), 5000)),
    ]);
    expect(result).toEqual({ ok: false, status: 0, latency_ms: expect.any(Number) });
  });

  it("is not ok when a 200's body does not arrive whole: stalled past timeoutMs, or cut off", async () => {
    // a non-JSON body counts as an answer, but a body that never came is a failed request
    expect(await probeHealth(`${base}/stall`, 300)).toEqual({
      ok: false,
      status: 0,
      latency_ms: expect.any(Number),
    });
    expect(await probeHealth(`${base}/cut`, 2000)).toEqual({
      ok: false,
      status: 0,
      latency_ms: expect.any(Number),
    });
  });

  it("names itself in the user-agent, as a client would see in the access log", async () => {
    let agent: unknown;
    await probeHealth(`${base}/agent`, 2000, async (url, init) => {
      const res = await fetch(url, init);
      agent = ((await res.clone().json()) as { agent?: string }).agent;
      return res;
    });
    expect(agent).toBe("chat-health-canary");
  });
});
