import { connect, createServer, type Server, type Socket } from "node:net";

/** A TCP proxy in front of Postgres that can stop forwarding: a connection gone silent, as a network fault leaves it. */
export interface FreezingProxy {
  url: string;
  /** Stops forwarding in both directions; every socket stays open. */
  freeze(): void;
  /**
   * Once the client sends bytes holding `marker` (e.g. a value bound to a statement), stops forwarding Postgres's
   * replies only: that statement still reaches the server, which runs (and commits) it while the client hears
   * nothing, as when a reply is lost on the way back. `scope`: on every connection (the default: Postgres silent
   * for all), or on that connection alone (one reply lost; the others answer).
   */
  freezeRepliesAfter(marker: string, scope?: "all" | "connection"): void;
  /**
   * Once the client sends bytes holding `marker`, forwards nothing more on that connection, those bytes included:
   * the statement never reaches the server (lost on the way there), and the connection is silent after it.
   */
  dropRequestsFrom(marker: string): void;
  thaw(): void;
  /** Runs `work` with the proxy cut as `cut` says (e.g. `() => proxy.freeze()`), then thaws it, whatever happened. */
  during<T>(cut: () => void, work: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  requests: boolean;
  replies: boolean;
}

type Trigger = { marker: Buffer; cut: (pair: Pair) => void };

export async function freezingProxy(target: URL): Promise<FreezingProxy> {
  const pairs = new Set<Pair>();
  let requests = true;
  let replies = true;
  let trigger: Trigger | undefined;
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    const pair: Pair = { client, upstream, requests: true, replies: true };
    pairs.add(pair);
    client.on("data", (chunk: Buffer) => {
      if (trigger && chunk.includes(trigger.marker)) {
        trigger.cut(pair);
        trigger = undefined;
      }
      if (requests && pair.requests) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (replies && pair.replies) client.write(chunk);
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
  const thaw = () => {
    trigger = undefined;
    requests = true;
    replies = true;
  };
  const url = new URL(target.href);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return {
    url: url.href,
    freeze: () => {
      requests = false;
      replies = false;
    },
    freezeRepliesAfter: (m, scope = "all") => {
      trigger = {
        marker: Buffer.from(m),
        cut: (pair) => {
          if (scope === "all") replies = false;
          else pair.replies = false;
        },
      };
    },
    dropRequestsFrom: (m) => {
      trigger = {
        marker: Buffer.from(m),
        cut: (pair) => {
          pair.requests = false;
          pair.replies = false;
        },
      };
    },
    thaw,
    during: async (cut, work) => {
      cut();
      try {
        return await work();
      } finally {
        thaw();
      }
    },
    close: async () => {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
