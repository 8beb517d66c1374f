import { connect, createServer, type Server, type Socket } from "node:net";

/** A TCP proxy in front of Postgres that can stop forwarding: a connection gone silent, as a network fault leaves it. */
export interface FreezingProxy {
  url: string;
  /** Stops forwarding in both directions; every socket stays open. */
  freeze(): void;
  /**
   * Once the client sends bytes holding `marker` (e.g. a value bound to a statement), stops forwarding Postgres's
   * replies only: that statement still reaches the server, which runs (and commits) it while the client hears
   * nothing, as when a reply is lost on the way back.
   */
  freezeRepliesAfter(marker: string): void;
  thaw(): void;
  close(): Promise<void>;
}

export async function freezingProxy(target: URL): Promise<FreezingProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let requests = true;
  let replies = true;
  let marker: Buffer | undefined;
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.on("data", (chunk: Buffer) => {
      if (marker && chunk.includes(marker)) {
        replies = false;
        marker = undefined;
      }
      if (requests) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (replies) client.write(chunk);
    });
    const drop = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const url = new URL(target.href);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return {
    url: url.href,
    freeze: () => {
      requests = false;
      replies = false;
    },
    freezeRepliesAfter: (m) => {
      marker = Buffer.from(m);
    },
    thaw: () => {
      marker = undefined;
      requests = true;
      replies = true;
    },
    close: async () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
