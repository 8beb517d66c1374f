// kafkajs has no cancel: a send its caller gave up on (a request's 1 s bound, the relay's budget) goes on
// connecting, loading metadata and retrying, and produces whenever it gets there. On Lambda a sandbox frozen
// after its response resumes that work on its next invocation, maybe minutes later, after a delete or an erase
// took text out of the outbox that these records still carry (the relay then sends the outbox's version). So
// every record is stamped with its send's deadline (sendBy), and Broker#produce, which kafkajs calls on every
// attempt once the leader's connection is up, refuses records past it: the error is not retriable, and kafkajs's
// retrier gives up. What is left is a produce request already queued behind another on the same connection.
import Broker from "kafkajs/src/broker/index.js";

const SEND_BY = Symbol("sendBy");

/** One send's deadline (ms since the epoch), shared by all its records, and whether a produce request was made. */
export interface SendDeadline {
  readonly at: number;
  tried: boolean;
}

export const sendDeadline = (at: number): SendDeadline => ({ at, tried: false });

/** Stamps a record with its send's deadline: from `deadline.at` no produce request carries it. */
export function sendBy<T extends object>(message: T, deadline: SendDeadline): T {
  (message as { [SEND_BY]?: SendDeadline })[SEND_BY] = deadline;
  return message;
}

export class KafkaSendExpiredError extends Error {
  override name = "KafkaSendExpiredError";
  readonly retriable = false;
  /** A retry refused: a produce request of the send was made before, and that attempt failed. */
  readonly afterAttempt: boolean;
  constructor(message: string, afterAttempt: boolean) {
    super(message);
    this.afterAttempt = afterAttempt;
  }
}

/**
 * Whether a send failed only because its records were refused for their deadline before any attempt reached a
 * broker (the producer was still connecting, or loading metadata), as such or as the cause of kafkajs's wrapper
 * (its retrier wraps an error it may not retry, e.g. after reconnecting a dropped cluster). A refused retry is
 * not: the attempt before it failed, maybe on a connection gone silent, which the producer should not keep.
 */
export function refusedForDeadline(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++)
    if (e instanceof KafkaSendExpiredError) return !e.afterAttempt;
  return false;
}

interface ProduceRequest {
  topicData: { partitions: { messages: { [SEND_BY]?: SendDeadline }[] }[] }[];
}
type Produce = (this: unknown, request: ProduceRequest) => Promise<unknown>;

const proto = (Broker as { prototype: { produce: Produce } }).prototype;
const produce = proto.produce;
proto.produce = function produceBeforeDeadline(this: unknown, request: ProduceRequest) {
  // A send's records share one SendDeadline, so any record of a request stands for all: a retry regroups them by
  // leader, and its requests may start with records other than the first attempt's.
  const deadline = request.topicData[0]?.partitions[0]?.messages[0]?.[SEND_BY];
  if (deadline) {
    if (Date.now() >= deadline.at)
      return Promise.reject(
        new KafkaSendExpiredError("the send's time ran out before its produce request", deadline.tried),
      );
    deadline.tried = true;
  }
  return produce.call(this, request);
};
