import { isIP, connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { type ISocketFactory, type KafkaConfig, type LogEntry, logLevel } from "kafkajs";
import "./kafkajs-idle-fix.ts";
import "./kafkajs-encoder-fix.ts";
import "./kafkajs-send-by.ts";
import { withTimeout } from "../timeout.ts";

/** Plain options, filled from Config by the caller: this module never reads process.env. */
export interface KafkaClientOptions {
  brokers: string[];
  clientId: string;
  ssl: boolean;
  auth: "none" | "msk-iam" | "scram-sha-512";
  /** Needed for msk-iam (the token is SigV4-signed for a region). */
  region?: string;
  /** Needed for scram-sha-512. */
  scram?: { username: string; password: string };
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Where kafkajs warnings/errors go; defaults to one JSON line on stderr. */
  log?: KafkaLogSink;
}

export type KafkaLogSink = (
  level: "warn" | "error",
  message: string,
  fields: Record<string, unknown>,
) => void;

// Only these fields of a kafkajs log entry are passed on: enough to diagnose, never payloads.
const SAFE_FIELDS = ["broker", "clientId", "groupId", "topic", "error", "retryCount", "retryTime", "type"];

const defaultSink: KafkaLogSink = (level, message, fields) => {
  const line = JSON.stringify({ level: level.toUpperCase(), source: "kafkajs", message, ...fields });
  if (level === "error") console.error(line);
  else console.warn(line);
};

/** kafkajs logCreator limited to WARN/ERROR and to SAFE_FIELDS. */
export function quietLogCreator(sink: KafkaLogSink = defaultSink) {
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      if (level !== logLevel.ERROR && level !== logLevel.WARN) return;
      const fields: Record<string, unknown> = { namespace };
      for (const key of SAFE_FIELDS) if (log[key] !== undefined) fields[key] = log[key];
      sink(level === logLevel.ERROR ? "error" : "warn", log.message, fields);
    };
}

/** How long a socket kafkajs has ended may wait for the broker's side of the close before it is destroyed. */
export const SOCKET_END_GRACE_MS = 2000;

/**
 * kafkajs's own socket factory (TLS with the broker's name, keep-alive after 60 s), except that a socket it ends is
 * destroyed if the broker has not closed its side within SOCKET_END_GRACE_MS, as ioredis does. kafkajs only calls
 * end(), and waits for the broker's FIN: a broker that accepts connections but answers nothing (a hung or stopped
 * process) never sends one, and every client dropped after a failed publish or ping kept its socket open for good.
 */
export const endingSocketFactory: ISocketFactory = ({ host, port, ssl, onConnect }) => {
  const socket: Socket = ssl
    ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...ssl }, onConnect)
    : netConnect({ host, port }, onConnect);
  socket.setKeepAlive(true, 60_000);
  const end = socket.end.bind(socket) as (...args: unknown[]) => Socket;
  socket.end = ((...args: unknown[]) => {
    const ended = end(...args);
    setTimeout(() => socket.destroy(), SOCKET_END_GRACE_MS).unref();
    return ended;
  }) as Socket["end"];
  return socket;
};

/** Builds the kafkajs config: short timeouts and few retries so a request never waits long on Kafka. */
export function buildKafkaConfig(options: KafkaClientOptions): KafkaConfig {
  const requestTimeout = options.requestTimeoutMs ?? 2000;
  const config: KafkaConfig = {
    clientId: options.clientId,
    brokers: options.brokers,
    ssl: options.ssl,
    connectionTimeout: options.connectionTimeoutMs ?? 1000,
    requestTimeout,
    authenticationTimeout: Math.max(requestTimeout, 3000),
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: logLevel.WARN,
    logCreator: quietLogCreator(options.log),
    socketFactory: endingSocketFactory,
  };
  if (options.auth === "msk-iam") {
    const region = options.region;
    if (!region) throw new Error("Kafka auth msk-iam needs a region");
    // MSK IAM runs over TLS only.
    config.ssl = true;
    config.sasl = {
      mechanism: "oauthbearer",
      oauthBearerProvider: async () => {
        // Loaded on first use: the signer pulls in the AWS credential chain.
        const { generateAuthToken } = await import("aws-msk-iam-sasl-signer-js");
        const { token } = await generateAuthToken({ region });
        return { value: token };
      },
    };
  }
  if (options.auth === "scram-sha-512") {
    if (!options.scram) throw new Error("Kafka auth scram-sha-512 needs credentials");
    config.sasl = { mechanism: "scram-sha-512", ...options.scram };
  }
  return config;
}

export interface ResolveBrokersOptions {
  brokers?: string[];
  mskClusterArn?: string;
  /** Defaults to the region in the cluster ARN. */
  region?: string;
  /** Bound on the look-up (default 5 s): a hung one would otherwise be cached and awaited by every publish. */
  timeoutMs?: number;
}

// Per process and per cluster: bootstrap brokers change only when the cluster is rebuilt.
const brokerCache = new Map<string, Promise<string[]>>();

/** Explicit brokers win; else the IAM bootstrap brokers of the MSK cluster (looked up once per process). */
export async function resolveBrokers(options: ResolveBrokersOptions): Promise<string[]> {
  if (options.brokers && options.brokers.length > 0) return options.brokers;
  const arn = options.mskClusterArn;
  if (!arn) throw new Error("Kafka brokers: set either brokers or an MSK cluster ARN");
  let pending = brokerCache.get(arn);
  if (!pending) {
    const ms = options.timeoutMs ?? 5000;
    pending = withTimeout(
      lookUpBootstrapBrokers(arn, options.region ?? arn.split(":")[3], ms),
      ms,
      () => new Error(`MSK bootstrap broker look-up timed out after ${ms} ms`),
    );
    brokerCache.set(arn, pending);
    // A failed look-up is not cached, so the next call tries again.
    pending.catch(() => brokerCache.delete(arn));
  }
  return pending;
}

/** For tests: forget looked-up brokers. */
export function clearBrokerCache(): void {
  brokerCache.clear();
}

async function lookUpBootstrapBrokers(
  arn: string,
  region: string | undefined,
  timeoutMs: number,
): Promise<string[]> {
  // Loaded lazily: processes without MSK never pay for the AWS SDK.
  const { KafkaClient, GetBootstrapBrokersCommand } = await import("@aws-sdk/client-kafka");
  // The SDK's HTTP handler has no timeouts by default: bound the socket too, not only the promise.
  const requestHandler = { connectionTimeout: timeoutMs, requestTimeout: timeoutMs };
  const client = new KafkaClient(region ? { region, requestHandler } : { requestHandler });
  try {
    const out = await client.send(new GetBootstrapBrokersCommand({ ClusterArn: arn }));
    const brokers = (out.BootstrapBrokerStringSaslIam ?? "")
      .split(",")
      .map((b) => b.trim())
      .filter(Boolean);
    if (brokers.length === 0) throw new Error(`MSK cluster ${arn} has no IAM bootstrap brokers`);
    return brokers;
  } finally {
    client.destroy();
  }
}
