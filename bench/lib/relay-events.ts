import { randomUUID } from "node:crypto";
import type { chatEvent as ChatEvent, CloudEvent } from "../../layers/chat/events/cloudevents.ts";
import { contentFor } from "./sessions.ts";

/**
 * `n` chat.message.created events shaped like the Kafka benchmark's outbox fill (500 sessions, the same user
 * message), for measuring the producer without Postgres. `chatEvent` is passed in so a tool can build them with
 * an older tree's code.
 */
export function relayLikeEvents(chatEvent: typeof ChatEvent, n: number): CloudEvent[] {
  const content = contentFor(1);
  const time = new Date().toISOString();
  return Array.from({ length: n }, (_, i) => {
    const session = `00000000-0000-4000-8000-${(i % 500).toString(16).padStart(12, "0")}`;
    return chatEvent("chat.message.created", session, time, {
      session_id: session,
      message_id: randomUUID(),
      seq: i + 1,
      role: "user",
      version: 1,
      content,
      reply_to: null,
    });
  });
}
