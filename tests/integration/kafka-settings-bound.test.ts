import type { AddressInfo } from "node:net";
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../layers/chat/config.ts";
import { chatEvent } from "../../layers/chat/events/cloudevents.ts";
import { kafkaPing, publishEvents } from "../../layers/chat/events/kafka-runtime.ts";

/**
 * A new sandbox finds its Kafka settings before its first publish or ping: with SASL/SCRAM that is a Secrets
 * Manager read. Here Secrets Manager accepts the connection and never answers: a publish and a ping must still end
 * within their own bounds (the relay's budget, /health's second), not wait for the read.
 */
const sockets = new Set<Socket>();
let silent: Server;

beforeAll(async () => {
  silent = createServer((s) => {
    sockets.add(s); // accepted, never answered
  });
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  vi.stubEnv(
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
  );
  vi.stubEnv("AWS_REGION", "us-east-1");
  vi.stubEnv("AWS_ACCESS_KEY_ID", "test");
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "test");
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => silent.close(r));
  vi.unstubAllEnvs();
});

const cfg = parseConfig({
  KAFKA_BROKERS: "127.0.0.1:1",
  KAFKA_AUTH: "scram-sha-512",
  KAFKA_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:000000000000:secret:kafka-AbCdEf",
});
const session = "00000000-0000-4000-8000-000000000001";
const event = chatEvent("chat.session.created", session, new Date().toISOString(), { session_id: session });

describe("Kafka settings that wait on a silent Secrets Manager", () => {
  it("a publish fails within its bound", async () => {
    const started = Date.now();
    await expect(publishEvents(cfg, [event], 300)).rejects.toThrow(/not ready within 300 ms/);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it("a ping reports Kafka down within its bound", async () => {
    const started = Date.now();
    expect(await kafkaPing(cfg, 300)).toEqual({ status: "down", latency_ms: null });
    expect(Date.now() - started).toBeLessThan(1500);
  });
});
