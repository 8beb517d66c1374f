import type { CloudEvent } from "./cloudevents.ts";

/**
 * Publishes a committed change's events right after commit (the fast path). Events are already safe in
 * the outbox; this only shortens the time to the topic. It must never throw and never take longer than
 * its bound: what it could not publish, the outbox relay publishes later.
 */
export interface EventPublisher {
  /** Whether afterCommit needs to know of older unpublished events (the change statement then checks). */
  readonly usesBacklog: boolean;
  afterCommit(sessionId: string, events: CloudEvent[], backlog: boolean): Promise<void>;
}

/** Kafka off: events wait in the outbox. */
export const outboxOnlyPublisher: EventPublisher = {
  usesBacklog: false,
  afterCommit: async () => {},
};
