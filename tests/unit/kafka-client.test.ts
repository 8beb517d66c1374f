import { randomUUID } from "node:crypto";
import { Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { GetBootstrapBrokersCommand, KafkaClient } from "@aws-sdk/client-kafka";
import { mockClient } from "aws-sdk-client-mock";
import { logLevel } from "kafkajs";
import type pg from "pg";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../layers/chat/config.ts";
import { chatEvent } from "../../layers/chat/events/cloudevents.ts";
import {
  buildKafkaConfig,
  clearBrokerCache,
  endingSocketFactory,
  quietLogCreator,
  resolveBrokers,
} from "../../layers/chat/events/kafka-client.ts";
import { kafkaPublisher } from "../../layers/chat/events/kafka-runtime.ts";
import { kafkaClientOptions } from "../../layers/chat/events/kafka-settings.ts";
import { selfSignedLocalhostCert } from "../helpers/self-signed-cert.ts";

const signer = vi.hoisted(() => ({
  generateAuthToken: vi.fn(async (_: { region: string }) => ({ token: "signed-token", expiryTime: 1 })),
}));
vi.mock("aws-msk-iam-sasl-signer-js", () => signer);

const base = { brokers: ["b-1:9098", "b-2:9098"], clientId: "chat-test" };

describe("buildKafkaConfig", () => {
  it("builds a plain config with short timeouts and bounded retries", () => {
    const config = buildKafkaConfig({ ...base, ssl: false, auth: "none" });
    expect(config).toMatchObject({
      clientId: "chat-test",
      brokers: ["b-1:9098", "b-2:9098"],
      ssl: false,
      connectionTimeout: 1000,
      requestTimeout: 2000,
      retry: { retries: 2, initialRetryTime: 100 },
      logLevel: logLevel.WARN,
    });
    expect(config.sasl).toBeUndefined();
  });

  it("takes timeouts from the options", () => {
    const config = buildKafkaConfig({
      ...base,
      ssl: true,
      auth: "none",
      connectionTimeoutMs: 300,
      requestTimeoutMs: 700,
    });
    expect(config).toMatchObject({ ssl: true, connectionTimeout: 300, requestTimeout: 700 });
  });

  it("uses SASL OAUTHBEARER with an MSK IAM token over TLS", async () => {
    const config = buildKafkaConfig({ ...base, ssl: false, auth: "msk-iam", region: "eu-west-1" });
    expect(config.ssl).toBe(true);
    expect(config.sasl?.mechanism).toBe("oauthbearer");
    if (!config.sasl || !("oauthBearerProvider" in config.sasl)) throw new Error("no oauthBearerProvider");
    await expect(config.sasl.oauthBearerProvider()).resolves.toEqual({ value: "signed-token" });
    expect(signer.generateAuthToken).toHaveBeenCalledWith({ region: "eu-west-1" });
  });

  it("refuses msk-iam without a region", () => {
    expect(() => buildKafkaConfig({ ...base, ssl: true, auth: "msk-iam" })).toThrow(/region/);
  });

  it("uses SASL/SCRAM-SHA-512 with the given credentials, and refuses it without them", () => {
    const scram = { username: "chat", password: "s3cret" };
    const config = buildKafkaConfig({ ...base, ssl: true, auth: "scram-sha-512", scram });
    expect(config.sasl).toEqual({ mechanism: "scram-sha-512", username: "chat", password: "s3cret" });
    expect(config.ssl).toBe(true);
    expect(() => buildKafkaConfig({ ...base, ssl: true, auth: "scram-sha-512" })).toThrow(/credentials/);
  });
});

describe("kafkaClientOptions (from the config)", () => {
  const arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:kafka-AbCdEf";

  it("reads the SCRAM secret only when KAFKA_AUTH=scram-sha-512, and passes its credentials on", async () => {
    const read = vi.fn(async (_arn: string) => ({ username: "chat", password: "s3cret" }));
    const scram = parseConfig({
      KAFKA_BROKERS: "k:9096",
      KAFKA_AUTH: "scram-sha-512",
      KAFKA_SECRET_ARN: arn,
    });
    expect(await kafkaClientOptions(scram, read)).toMatchObject({
      brokers: ["k:9096"],
      auth: "scram-sha-512",
      scram: { username: "chat", password: "s3cret" },
    });
    expect(read).toHaveBeenCalledWith(arn);
    read.mockClear();
    const plain = await kafkaClientOptions(parseConfig({ KAFKA_BROKERS: "k:9092" }), read);
    expect(plain.scram).toBeUndefined();
    expect(read).not.toHaveBeenCalled();
  });

  it("a secret read that never answers fails after 5 s instead of waiting for ever", async () => {
    vi.useFakeTimers();
    try {
      const cfg = parseConfig({
        KAFKA_BROKERS: "k:9096",
        KAFKA_AUTH: "scram-sha-512",
        KAFKA_SECRET_ARN: arn,
      });
      const pending = kafkaClientOptions(cfg, () => new Promise(() => {}));
      const outcome = pending.then(
        () => "resolved",
        (e: Error) => e.message,
      );
      await vi.advanceTimersByTimeAsync(5000);
      expect(await outcome).toMatch(/not read within 5000 ms/);
    } finally {
      vi.useRealTimers();
    }
  });

  it("a config with scram-sha-512 and no secret is refused at start", () => {
    expect(() => parseConfig({ KAFKA_BROKERS: "k:9096", KAFKA_AUTH: "scram-sha-512" })).toThrow(
      /KAFKA_AUTH=scram-sha-512 needs KAFKA_SECRET_ARN/,
    );
  });
});

describe("quietLogCreator", () => {
  const entry = (level: logLevel, log: Record<string, unknown>) => ({
    namespace: "Producer",
    level,
    label: "x",
    log: { timestamp: "t", message: "m", ...log },
  });

  it("passes WARN and ERROR on with safe fields only, drops INFO and DEBUG", () => {
    const sink = vi.fn();
    const log = quietLogCreator(sink)();
    log(entry(logLevel.INFO, {}));
    log(entry(logLevel.DEBUG, {}));
    log(entry(logLevel.ERROR, { broker: "b-1:9098", error: "boom", value: "secret", messages: ["secret"] }));
    log(entry(logLevel.WARN, { topic: "t" }));
    expect(sink.mock.calls).toEqual([
      ["error", "m", { namespace: "Producer", broker: "b-1:9098", error: "boom" }],
      ["warn", "m", { namespace: "Producer", topic: "t" }],
    ]);
  });
});

describe("resolveBrokers", () => {
  const arn = "arn:aws:kafka:eu-west-1:123456789012:cluster/chat/abc-1";
  const kafka = mockClient(KafkaClient);

  beforeEach(() => {
    kafka.reset();
    clearBrokerCache();
  });

  it("returns explicit brokers without calling AWS", async () => {
    await expect(resolveBrokers({ brokers: ["x:1"], mskClusterArn: arn })).resolves.toEqual(["x:1"]);
    expect(kafka.calls()).toHaveLength(0);
  });

  it("looks up the IAM bootstrap brokers once and caches them", async () => {
    kafka
      .on(GetBootstrapBrokersCommand, { ClusterArn: arn })
      .resolves({ BootstrapBrokerStringSaslIam: "b-1.msk:9098,b-2.msk:9098" });
    const first = await resolveBrokers({ mskClusterArn: arn });
    const second = await resolveBrokers({ mskClusterArn: arn });
    expect(first).toEqual(["b-1.msk:9098", "b-2.msk:9098"]);
    expect(second).toEqual(first);
    expect(kafka.commandCalls(GetBootstrapBrokersCommand)).toHaveLength(1);
    expect(await kafka.call(0).thisValue.config.region()).toBe("eu-west-1");
  });

  it("does not cache a failed look-up", async () => {
    kafka
      .on(GetBootstrapBrokersCommand)
      .rejectsOnce(new Error("throttled"))
      .resolves({ BootstrapBrokerStringSaslIam: "b-1.msk:9098" });
    await expect(resolveBrokers({ mskClusterArn: arn })).rejects.toThrow("throttled");
    await expect(resolveBrokers({ mskClusterArn: arn })).resolves.toEqual(["b-1.msk:9098"]);
    expect(kafka.commandCalls(GetBootstrapBrokersCommand)).toHaveLength(2);
  });

  it("fails clearly without brokers or ARN, or when the cluster has no IAM brokers", async () => {
    await expect(resolveBrokers({})).rejects.toThrow(/brokers/);
    kafka.on(GetBootstrapBrokersCommand).resolves({});
    await expect(resolveBrokers({ mskClusterArn: arn })).rejects.toThrow(/no IAM bootstrap brokers/);
  });

  it("a look-up that never answers fails within its bound, and is not cached", async () => {
    kafka
      .on(GetBootstrapBrokersCommand)
      .callsFakeOnce(() => new Promise(() => {}))
      .resolves({ BootstrapBrokerStringSaslIam: "b-1.msk:9098" });
    const started = performance.now();
    await expect(resolveBrokers({ mskClusterArn: arn, timeoutMs: 100 })).rejects.toThrow(
      /timed out after 100 ms/,
    );
    expect(performance.now() - started).toBeLessThan(1000);
    await expect(resolveBrokers({ mskClusterArn: arn })).resolves.toEqual(["b-1.msk:9098"]);
  });

  it("the SDK client gets socket timeouts too (its default has none)", async () => {
    kafka.on(GetBootstrapBrokersCommand).resolves({ BootstrapBrokerStringSaslIam: "b-1.msk:9098" });
    await resolveBrokers({ mskClusterArn: arn, timeoutMs: 1234 });
    const handler = kafka.call(0).thisValue.config.requestHandler as {
      configProvider?: Promise<{ connectionTimeout?: number; requestTimeout?: number }>;
    };
    const options = await handler.configProvider;
    expect(options).toMatchObject({ connectionTimeout: 1234, requestTimeout: 1234 });
  });

  it("a request's after-commit publish returns within KAFKA_PUBLISH_TIMEOUT_MS while the look-up hangs", async () => {
    kafka.on(GetBootstrapBrokersCommand).callsFake(() => new Promise(() => {}));
    const cfg = parseConfig({ MSK_CLUSTER_ARN: arn, KAFKA_AUTH: "msk-iam", KAFKA_PUBLISH_TIMEOUT_MS: "200" });
    const pool = {} as pg.Pool; // not reached: nothing is published, so nothing is marked
    const publisher = kafkaPublisher(cfg, pool);
    const event = chatEvent("chat.session.created", randomUUID(), new Date().toISOString(), {
      session_id: randomUUID(),
    });
    const started = performance.now();
    await publisher.afterCommit(event.subject, [event], false);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe("endingSocketFactory", () => {
  it("names the broker in the TLS handshake (SNI) and keeps the connection alive after 60 s idle, as kafkajs's own", async () => {
    const names: string[] = [];
    const keepAlive = vi.spyOn(Socket.prototype, "setKeepAlive");
    try {
      const server = createTlsServer({
        ...selfSignedLocalhostCert(),
        SNICallback: (name, cb) => {
          names.push(name);
          cb(null);
        },
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const { port } = server.address() as { port: number };
      const socket = await new Promise<Socket>((resolve, reject) => {
        const s = endingSocketFactory({
          host: "localhost",
          port,
          ssl: { rejectUnauthorized: false },
          onConnect: () => resolve(s),
        });
        s.on("error", reject);
      });
      socket.destroy();
      await new Promise((r) => server.close(r));
      expect(names).toEqual(["localhost"]);
      expect(keepAlive).toHaveBeenCalledWith(true, 60_000);
    } finally {
      keepAlive.mockRestore();
    }
  });
});
