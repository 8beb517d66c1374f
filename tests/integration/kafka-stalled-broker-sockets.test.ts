import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { disconnectProducer, pingKafka, publishRecords } from "../../layers/chat/events/kafka-producer.ts";
import { startHungBroker } from "../helpers/hung-broker.ts";

/**
 * A broker that accepts connections and then answers nothing (its process stopped: a hang, a stop-the-world pause)
 * for as long as a warm sandbox lives. Every failed publish or ping drops its client, and kafkajs ends the client's
 * sockets with a FIN that such a broker never answers: each stayed open, one file descriptor more per failure
 * (Lambda's limit is 1,024), until the broker came back.
 */
let broker: Awaited<ReturnType<typeof startHungBroker>>;
let port: number;

beforeAll(async () => {
  broker = await startHungBroker();
  port = broker.port;
});
afterAll(async () => {
  broker?.stop();
  await disconnectProducer();
});

/** This process's open TCP sockets to the broker (file descriptors, not the kernel's orphans). */
function socketsToBroker(): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
      if (inode) inodes.add(inode);
    } catch {
      // closed since the listing
    }
  }
  const remote = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[2]?.endsWith(remote) && inodes.has(f[9] ?? "")).length;
}

describe("Kafka: a broker that stopped answering", () => {
  it("failed publishes and pings leave no socket open behind them", async () => {
    const config = {
      brokers: [`127.0.0.1:${port}`],
      clientId: "stalled-broker-test",
      ssl: false,
      auth: "none" as const,
      log: () => {},
    };
    const rounds = 6;
    for (let i = 0; i < rounds; i++) {
      expect((await pingKafka(1000, config)).status).toBe("down");
      await expect(
        publishRecords([{ topic: "stalled", key: "k", value: "v", headers: {} }], {
          timeoutMs: 1000,
          config,
        }),
      ).rejects.toThrow();
    }
    // the process's one producer may keep its connection; what was dropped must go (it stayed at 2 per round)
    await expect.poll(socketsToBroker, { timeout: 15_000, interval: 250 }).toBeLessThanOrEqual(2);
  });
});
