import { createRequire } from "node:module";
import { isIP } from "node:net";
import type { Redis } from "ioredis";
import { readJsonSecretBounded } from "../bounded-secret-read.ts";
import { config } from "../config.ts";

export { SECRET_READ_TIMEOUT_MS as REDIS_SECRET_READ_TIMEOUT_MS } from "../bounded-secret-read.ts";

let client: Redis | null | undefined;

/** One Redis command as a pipeline sends it (`pipeline.call(...command)`). */
export type RedisCommand = readonly [string, ...(string | number)[]];

/**
 * ioredis, loaded on the first getRedis() that needs a client rather than when this module loads: the rate limiter
 * imports this module in every HTTP function, and the ones that never talk to Redis (openapi, rate-limit exempt)
 * then skip its ~35 ms of require time. Functions that do use Redis import "ioredis" themselves
 * (chat-runtime.ts, health.ts), so they still load it during init.
 * A plain `require` where there is one, which esbuild bundles (bundled mode) or leaves to the layer (layer mode);
 * Node running the ESM sources has none and takes createRequire's. ioredis is CommonJS only: both give the
 * same module instance as an `import` of it.
 */
function ioredis(): typeof import("ioredis") {
  return typeof require === "function" ? require("ioredis") : createRequire(import.meta.url)("ioredis");
}

/** REDIS_SECRET_ARN's JSON (the Kafka secret's shape); without a username, AUTH is the default user's. */
interface RedisSecret {
  username?: string;
  password: string;
}

// The client connects only after this read: bounded (a failed first read is tried again by the next command, or
// the rate limiter's wait). Cached, so a rotated password reaches new connections within the cache's age.
async function readCredentials(arn: string): Promise<RedisSecret> {
  const secret = await readJsonSecretBounded<RedisSecret>(arn, "Redis");
  // The message names the field only: the secret's content is a password.
  if (typeof secret?.password !== "string" || secret.password === "")
    throw new Error('the Redis secret has no "password"');
  return secret;
}

/**
 * A client that authenticates with the secret's credentials. ioredis takes them from its options when a connection
 * starts and cannot fetch them itself, so connect() (the first connection and every reconnect) reads them first.
 * Until the first read it stays in "wait": a command then fails at once (no offline queue), as a cache miss, and
 * opens no connection without credentials. A reconnect whose read fails keeps the credentials it has.
 */
function withSecretAuth(Base: typeof Redis, arn: string) {
  return class extends Base {
    #connecting?: Promise<void>;
    #hasCredentials = false;
    #closed = false;

    override connect(): Promise<void> {
      this.#connecting ??= readCredentials(arn)
        .then(
          ({ username, password }) => {
            this.options.username = username;
            this.options.password = password;
            this.#hasCredentials = true;
          },
          (err) => {
            if (!this.#hasCredentials) throw err;
          },
        )
        .then(() => {
          // closeRedis() during the read: connecting now would leave a connection nobody holds
          if (this.#closed) throw new Error("Connection is closed.");
          return super.connect();
        })
        .finally(() => {
          this.#connecting = undefined;
        });
      return this.#connecting;
    }

    override disconnect(reconnect = false): void {
      if (!reconnect) this.#closed = true;
      super.disconnect(reconnect);
    }
  };
}

/**
 * One ioredis client per process, or null when REDIS_URL is unset. Redis is only a cache: short timeouts,
 * no offline queue (a command while disconnected fails at once), no per-command retries.
 */
export function getRedis(): Redis | null {
  if (client !== undefined) return client;
  const cfg = config();
  if (!cfg.REDIS_URL) {
    client = null;
    return client;
  }
  const { Redis } = ioredis();
  const arn = cfg.REDIS_SECRET_ARN;
  const Client = arn ? withSecretAuth(Redis, arn) : Redis;
  client = new Client(cfg.REDIS_URL, {
    connectTimeout: cfg.REDIS_CONNECT_TIMEOUT_MS,
    commandTimeout: cfg.REDIS_COMMAND_TIMEOUT_MS,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // Keep trying in the background, at most every 2 s, so the cache comes back by itself.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    tls: cfg.REDIS_TLS || /^rediss:/i.test(cfg.REDIS_URL) ? tlsOptions(cfg.REDIS_URL) : undefined,
    // With a secret, connected below: ioredis's constructor would call connect() before the subclass's fields exist.
    lazyConnect: arn !== undefined,
  });
  client.on("error", () => {}); // failures surface per command; the cache treats them as misses
  if (arn) client.connect().catch(() => {}); // a failed read leaves it waiting for the next command
  return client;
}

/**
 * TLS to the URL's host, named in the handshake (SNI): Node's tls.connect sends no server name unless given one, and
 * ioredis gives none, so an endpoint that serves several names from one address (a TLS proxy, a managed cache's
 * front end) could present another certificate or refuse the handshake. The certificate is still checked against
 * the host (Node's default). An IP address is no server name: none is sent for one.
 */
function tlsOptions(url: string): { servername?: string } {
  let host: string;
  try {
    // as ioredis reads it: `host:port` and `//host` are redis:// URLs
    host = new URL(/^rediss?:\/\//i.test(url) ? url : `redis:${url.startsWith("//") ? "" : "//"}${url}`)
      .hostname;
  } catch {
    return {};
  }
  host = host.replace(/^\[|\]$/g, "");
  return host && !isIP(host) ? { servername: host } : {};
}

/**
 * Waits (bounded) for the first connection, so a cold start does not begin with a cache miss storm. Its listener
 * goes with the wait: /health waits on every call, and during an outage each call left one on the process's client.
 */
export async function redisReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === "ready") return;
  await new Promise<void>((resolve) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      redis.off("ready", onReady);
      resolve();
    }, timeoutMs);
    redis.once("ready", onReady);
  });
}

export async function closeRedis(): Promise<void> {
  const c = client;
  client = undefined;
  if (c) c.disconnect();
}
