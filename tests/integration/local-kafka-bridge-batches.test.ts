import type { MSKEvent } from "aws-lambda";
import { Kafka, logLevel } from "kafkajs";
import { afterEach, describe, expect, it } from "vitest";
import type { FunctionSpec } from "../../functions/manifest.ts";
import { type KafkaBridge, type KafkaBridgeOptions, startKafkaBridge } from "../../local/kafka-bridge.ts";
import { type MockKafka, startMockKafka } from "../helpers/kafka-mock-cluster.ts";

// The bridge as the MSK event source mapping's stand-in: invocations of at most the manifest's batch size, each
// committed when it returns, and a long invocation does not cost the group its membership (and a replay).

let kafka: MockKafka | undefined;
let bridge: KafkaBridge | undefined;

afterEach(async () => {
  await bridge?.stop();
  bridge = undefined;
  kafka?.stop();
  kafka = undefined;
});

async function topicWith(count: number): Promise<MockKafka> {
  const cluster = startMockKafka({ brokers: 1, topics: [{ name: "bridge-t", partitions: 1 }] });
  const producer = new Kafka({ brokers: cluster.brokers, logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  await producer.send({
    topic: "bridge-t",
    messages: Array.from({ length: count }, (_, i) => ({ key: `k${i}`, value: `v${i}` })),
  });
  await producer.disconnect();
  return cluster;
}

const consumerFn = (batchSize?: number): FunctionSpec => ({
  name: "bridge-consumer",
  handler: "bridge-consumer",
  description: "test",
  kafkaTopic: "bridge-t",
  ...(batchSize ? { kafkaBatchSize: batchSize } : {}),
  memoryMb: 128,
  timeoutSeconds: 60,
});

/** The offsets each invocation received, in order. */
const offsetsOf = (event: MSKEvent) =>
  Object.values(event.records)
    .flat()
    .map((r) => r.offset);

async function bridgeFor(
  cluster: MockKafka,
  fn: FunctionSpec,
  invoke: KafkaBridgeOptions["invoke"],
  extra: Partial<KafkaBridgeOptions> = {},
): Promise<KafkaBridge> {
  return startKafkaBridge({ brokers: cluster.brokers, functions: [fn], invoke, log: () => {}, ...extra });
}

async function until(done: () => boolean, ms: number) {
  const end = Date.now() + ms;
  while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
}

describe("local Kafka bridge batches", () => {
  it("invokes with at most the manifest's batch size, every record once, in order", async () => {
    kafka = await topicWith(250);
    const calls: number[][] = [];
    bridge = await bridgeFor(kafka, consumerFn(100), async (_name, event) => {
      calls.push(offsetsOf(event as MSKEvent));
      return {};
    });
    await until(() => calls.flat().length >= 250, 15_000);
    expect(calls.map((c) => c.length)).toEqual([100, 100, 50]);
    expect(calls.flat()).toEqual(Array.from({ length: 250 }, (_, i) => i));
  });

  it("uses Lambda's default of 100 when the manifest names no batch size", async () => {
    kafka = await topicWith(150);
    const sizes: number[] = [];
    bridge = await bridgeFor(kafka, consumerFn(), async (_name, event) => {
      sizes.push(offsetsOf(event as MSKEvent).length);
      return {};
    });
    await until(() => sizes.reduce((a, b) => a + b, 0) >= 150, 15_000);
    expect(sizes).toEqual([100, 50]);
  });

  it("retries only the invocation that failed: the ones before it stay committed", async () => {
    kafka = await topicWith(30);
    const calls: number[][] = [];
    bridge = await bridgeFor(kafka, consumerFn(10), async (_name, event) => {
      const offsets = offsetsOf(event as MSKEvent);
      calls.push(offsets);
      if (offsets[0] === 10 && calls.filter((c) => c[0] === 10).length === 1)
        throw new Error("first try fails");
      return {};
    });
    await until(() => calls.some((c) => c[0] === 20), 20_000);
    expect(calls.map((c) => c[0])).toEqual([0, 10, 10, 20]);
  });

  it("keeps its group membership through a fetch of short invocations that outlasts the session timeout", async () => {
    kafka = await topicWith(100);
    const calls: number[] = [];
    bridge = await bridgeFor(
      kafka,
      consumerFn(10),
      async (_name, event) => {
        calls.push(offsetsOf(event as MSKEvent)[0] ?? -1);
        // each under the heartbeat interval, ten of them past the session timeout, all from one fetch
        await new Promise((r) => setTimeout(r, 900));
        return {};
      },
      { sessionTimeoutMs: 6_000, heartbeatEveryMs: 1_000 },
    );
    await until(() => calls.includes(90), 40_000);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(calls).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
  }, 50_000);

  it("keeps its group membership through an invocation longer than the session timeout", async () => {
    kafka = await topicWith(20);
    const calls: number[][] = [];
    bridge = await bridgeFor(
      kafka,
      consumerFn(10),
      async (_name, event) => {
        calls.push(offsetsOf(event as MSKEvent));
        // Longer than the group's session timeout: without heartbeats the coordinator drops the member.
        if (calls.length === 1) await new Promise((r) => setTimeout(r, 9_000));
        return {};
      },
      { sessionTimeoutMs: 6_000, heartbeatEveryMs: 500 },
    );
    await until(() => calls.some((c) => c[0] === 10), 30_000);
    // Give a replay of the first invocation, if the commit had been lost, time to show.
    await new Promise((r) => setTimeout(r, 2_000));
    expect(calls.map((c) => c[0])).toEqual([0, 10]);
  }, 40_000);
});
