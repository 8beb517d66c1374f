import { createRequire } from "node:module";
import { KafkaJSNonRetriableError } from "kafkajs";
import Broker from "kafkajs/src/broker/index.js";
import { describe, expect, it, vi } from "vitest";
import {
  KafkaSendExpiredError,
  refusedForDeadline,
  sendBy,
  sendDeadline,
} from "../../layers/chat/events/kafkajs-send-by.ts";

// kafkajs's own retrier, as its producer uses it around each send.
const createRetry = createRequire(import.meta.url)("kafkajs/src/retry/index.js") as (options: {
  retries: number;
  initialRetryTime: number;
}) => <T>(fn: () => Promise<T>) => Promise<T>;

/** kafkajs has no cancel: Broker#produce refuses records stamped with a deadline already past. */
const produce = (Broker as { prototype: { produce: (this: unknown, request: unknown) => Promise<unknown> } })
  .prototype.produce;
const request = (deadline: number) => ({
  topicData: [
    {
      topic: "t",
      partitions: [{ partition: 0, messages: [sendBy({ value: "v" }, sendDeadline(deadline))] }],
    },
  ],
});

describe("a produce request past its send's deadline", () => {
  it("is refused before anything reaches the broker", async () => {
    const broker = { lookupRequest: vi.fn() };
    await expect(produce.call(broker, request(Date.now() - 1))).rejects.toBeInstanceOf(KafkaSendExpiredError);
    expect(broker.lookupRequest).not.toHaveBeenCalled();
  });

  it("is refused when the deadline is exactly now, and made one millisecond before it", async () => {
    const now = Date.now();
    vi.spyOn(Date, "now").mockReturnValue(now);
    try {
      const reached = new Error("reached kafkajs's produce");
      const broker = {
        lookupRequest: vi.fn(() => {
          throw reached;
        }),
      };
      // the deadline is the first moment no request may carry the send
      await expect(produce.call(broker, request(now))).rejects.toBeInstanceOf(KafkaSendExpiredError);
      expect(broker.lookupRequest).not.toHaveBeenCalled();
      await expect(produce.call(broker, request(now + 1))).rejects.toBe(reached);
    } finally {
      vi.restoreAllMocks();
    }
  });

  it("is given up by kafkajs's retrier at once, not retried until the retries run out", async () => {
    const retry = createRetry({ retries: 5, initialRetryTime: 1 });
    const attempt = vi.fn(async () => {
      throw new KafkaSendExpiredError("late", false);
    });
    const err = await retry(attempt).catch((e: unknown) => e);
    // a retriable error would have been attempted 6 times and come back as KafkaJSNumberOfRetriesExceeded
    expect(attempt).toHaveBeenCalledTimes(1);
    expect(err).toBeInstanceOf(KafkaJSNonRetriableError);
    expect(refusedForDeadline(err)).toBe(true);
    expect(new KafkaSendExpiredError("late", false).retriable).toBe(false);
  });

  it("goes to kafkajs's own produce while the deadline is ahead, and without a stamp", async () => {
    const reached = new Error("reached kafkajs's produce");
    const broker = {
      lookupRequest: vi.fn(() => {
        throw reached;
      }),
    };
    await expect(produce.call(broker, request(Date.now() + 60_000))).rejects.toBe(reached);
    await expect(
      produce.call(broker, { topicData: [{ topic: "t", partitions: [{ partition: 0, messages: [{}] }] }] }),
    ).rejects.toBe(reached);
    expect(broker.lookupRequest).toHaveBeenCalledTimes(2);
  });

  it("a refused retry (an attempt of the send reached a broker and failed) is not a mere deadline refusal", async () => {
    const broker = {
      lookupRequest: vi.fn(() => {
        throw new Error("request timed out"); // a connection gone silent
      }),
    };
    const deadline = { at: Date.now() + 60_000, tried: false }; // one send of three records
    const [m0, m1, m2] = [
      sendBy({ value: "0" }, deadline),
      sendBy({ value: "1" }, deadline),
      sendBy({ value: "2" }, deadline),
    ];
    const to = (partitions: object[][]) => ({
      topicData: [
        { topic: "t", partitions: partitions.map((messages, partition) => ({ partition, messages })) },
      ],
    });
    await expect(produce.call(broker, to([[m0, m1], [m2]]))).rejects.toThrow("request timed out");
    deadline.at = Date.now() - 1; // the retry comes after the deadline, regrouped: partition 1 has a new leader
    const err = await produce.call(broker, to([[m2]])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KafkaSendExpiredError);
    expect(refusedForDeadline(err)).toBe(false); // the producer goes: its connection failed the attempt
    // a send refused before any of its requests was made keeps it
    const fresh = await produce.call(broker, request(Date.now() - 1)).catch((e: unknown) => e);
    expect(refusedForDeadline(fresh)).toBe(true);
  });

  // kafkajs's retrier wraps an error it may not retry as new KafkaJSNonRetriableError(e, { cause: e.cause || e })
  it("is told apart from other failures, also wrapped by kafkajs's retrier", () => {
    const expired = new KafkaSendExpiredError("late", false);
    expect(refusedForDeadline(expired)).toBe(true);
    expect(refusedForDeadline(Object.assign(new KafkaJSNonRetriableError(expired), { cause: expired }))).toBe(
      true,
    );
    expect(refusedForDeadline(new KafkaJSNonRetriableError(new Error("broker gone")))).toBe(false);
    expect(refusedForDeadline(new Error("timeout"))).toBe(false);
    expect(refusedForDeadline("not an error")).toBe(false);
  });
});
