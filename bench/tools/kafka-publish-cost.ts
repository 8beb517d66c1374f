/**
 * The Kafka producer alone: chat events published in batches through the product's `publishRecords` (acks=all)
 * to librdkafka's mock cluster, without Postgres. Prints this process's CPU per event and events/s. The mock
 * brokers run in this process too (their threads count in the CPU), so compare trees, not with a real cluster.
 *
 * Usage: node bench/tools/kafka-publish-cost.ts [--tree DIR] [--batch N] [--rounds N]
 *   --tree    a checkout whose layers/chat is measured (default: this one), e.g. a `git worktree` of an older commit
 *   --batch   events per publish (default 2000)
 *   --rounds  timed publishes after 5 untimed ones (default 20)
 * Traffic stays in this process (the mock cluster listens on 127.0.0.1).
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import type { chatEvent as ChatEvent } from "../../layers/chat/events/cloudevents.ts";
import type * as Producer from "../../layers/chat/events/kafka-producer.ts";
import type { toRecords as ToRecords } from "../../layers/chat/events/outbox-relay.ts";
import { startMockKafka } from "../../tests/helpers/kafka-mock-cluster.ts";
import { relayLikeEvents } from "../lib/relay-events.ts";

const { values } = parseArgs({
  options: {
    tree: { type: "string" },
    batch: { type: "string", default: "2000" },
    rounds: { type: "string", default: "20" },
    help: { type: "boolean" },
  },
  strict: true,
});
if (values.help) {
  process.stdout.write(
    "usage: node bench/tools/kafka-publish-cost.ts [--tree DIR] [--batch N] [--rounds N]\n",
  );
  process.exit(0);
}
const batch = Math.min(Math.max(1, Number(values.batch)), 10_000);
const rounds = Math.min(Math.max(1, Number(values.rounds)), 200);
const tree = resolve(values.tree ?? resolve(import.meta.dirname, "../.."));
const { chatEvent } = (await import(`${tree}/layers/chat/events/cloudevents.ts`)) as {
  chatEvent: typeof ChatEvent;
};
const { toRecords } = (await import(`${tree}/layers/chat/events/outbox-relay.ts`)) as {
  toRecords: typeof ToRecords;
};
const producer = (await import(`${tree}/layers/chat/events/kafka-producer.ts`)) as typeof Producer;

const TOPIC = "chat-messages";
const mock = startMockKafka({ brokers: 3, topics: [{ name: TOPIC, partitions: 6 }] });
try {
  const config: Producer.ProducerSettings = {
    brokers: mock.brokers,
    clientId: "publish-cost",
    ssl: false,
    auth: "none",
  };
  // As the relay publishes them (the Kafka benchmark's outbox fill), built once and published again and again.
  const records = toRecords(TOPIC, relayLikeEvents(chatEvent, batch));
  const publish = () => producer.publishRecords(records, { timeoutMs: 30_000, config });
  for (let i = 0; i < 5; i++) await publish();
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < rounds; i++) await publish();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const events = rounds * batch;
  process.stdout.write(
    `${tree}: batch ${batch} × ${rounds}: ${((used.user + used.system) / events).toFixed(1)} µs CPU per event ` +
      `(producer + mock brokers), ${Math.round(events / seconds)} events/s\n`,
  );
} finally {
  await producer.disconnectProducer();
  mock.stop();
}
