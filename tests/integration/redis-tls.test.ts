import { connect, type Socket } from "node:net";
import { createServer, type Server } from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { closeRedis, getRedis } from "../../layers/chat/cache/redis-client.ts";
import { resetConfig } from "../../layers/chat/config.ts";
import { type PrivateRedis, startPrivateRedis } from "../helpers/private-redis.ts";
import { selfSignedLocalhostCert } from "../helpers/self-signed-cert.ts";

/**
 * The cache in AWS is reached over TLS (`rediss://`, REDIS_TLS=true). The client must name the host it connects to
 * (SNI) and check the certificate it gets: a TLS endpoint in front of a real (cluster-mode) Redis here presents a
 * certificate for the right name that no CA signed, so a client that checks nothing would get its PING answered.
 */
let backend: PrivateRedis;
let server: Server;
let port: number;
const names: string[] = [];
const sockets = new Set<Socket>();
let forwarded = 0;

beforeAll(async () => {
  const { key, cert } = selfSignedLocalhostCert();
  backend = await startPrivateRedis({ cluster: true });
  server = createServer(
    {
      key,
      cert,
      SNICallback: (name, cb) => {
        names.push(name);
        cb(null);
      },
    },
    (tls) => {
      const upstream = connect(backend.port, "127.0.0.1");
      sockets.add(upstream);
      tls.on("data", () => forwarded++);
      tls.pipe(upstream).pipe(tls);
      tls.on("error", () => upstream.destroy());
      upstream.on("error", () => tls.destroy());
    },
  );
  server.on("tlsClientError", () => {});
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});
afterEach(async () => {
  await closeRedis();
  vi.unstubAllEnvs();
  resetConfig();
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server?.close(r));
  await backend?.stop();
});

describe("the Redis client over TLS", () => {
  for (const [url, tlsFlag] of [
    ["rediss://localhost:PORT", undefined],
    ["redis://localhost:PORT", "true"],
  ] as const) {
    it(`${url}${tlsFlag ? " with REDIS_TLS=true" : ""}: sends the host's name and refuses a certificate no CA signed`, async () => {
      names.length = 0;
      forwarded = 0;
      vi.stubEnv("REDIS_URL", url.replace("PORT", String(port)));
      if (tlsFlag) vi.stubEnv("REDIS_TLS", tlsFlag);
      vi.stubEnv("REDIS_CONNECT_TIMEOUT_MS", "2000");
      vi.stubEnv("REDIS_COMMAND_TIMEOUT_MS", "2000");
      resetConfig();
      const client = getRedis();
      if (!client) throw new Error("REDIS_URL is set: expected a client");
      const refused = new Promise<Error>((resolve) => client.on("error", resolve));
      expect((await refused).message).toMatch(/self[- ]signed certificate/);
      await expect(client.ping()).rejects.toThrow();
      expect(names).toContain("localhost");
      expect(forwarded).toBe(0);
    });
  }

  it("names no server for an IP address, IPv6 included (RFC 6066 allows host names only)", async () => {
    for (const [host, servername] of [
      ["127.0.0.1", undefined],
      ["[::1]", undefined],
      ["localhost", "localhost"],
    ] as const) {
      vi.stubEnv("REDIS_URL", `rediss://${host}:1`);
      resetConfig();
      const client = getRedis();
      if (!client) throw new Error("REDIS_URL is set: expected a client");
      client.on("error", () => {}); // nothing listens on port 1
      expect(client.options.tls, host).toEqual(servername ? { servername } : {});
      await closeRedis();
    }
  });
});
