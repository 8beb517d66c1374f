import type pg from "pg";
import type { Config } from "../config.ts";
import type { Check } from "../health/health-check.ts";
import { timeLeftMs } from "../request-deadline.ts";
import { withTimeout } from "../timeout.ts";
import type { CloudEvent } from "./cloudevents.ts";
import type { EventPublisher } from "./event-publisher.ts";
import { KafkaTimeoutError, type ProducerSettings, pingKafka, publishRecords } from "./kafka-producer.ts";
import { kafkaClientOptions } from "./kafka-settings.ts";
import { toRecords } from "./outbox-relay.ts";
import { markEventsPublished, markPublished, pendingForSession } from "./outbox-store.ts";
import { noteNotSent } from "./request-events.ts";

/** Kafka is on when brokers or an MSK cluster are configured; otherwise events wait in the outbox. */
export const kafkaEnabled = (cfg: Config) => cfg.KAFKA_BROKERS.length > 0 || !!cfg.MSK_CLUSTER_ARN;

let settings: { value: Promise<ProducerSettings>; readAt: number } | undefined;
let refreshing: Promise<void> | undefined;

/**
 * How long settings that hold a SCRAM password are used before they are read again: a rotated password reaches a
 * warm sandbox within this (Secrets Manager reads are cached as long), and a changed password makes a new producer.
 * The read happens in the background, the settings in use stay until it succeeds. Broker look-ups and MSK IAM (a
 * token signed per authentication) need no refresh.
 */
export const SCRAM_SETTINGS_MAX_AGE_MS = 300_000;
/** After a failed refresh, the next one waits this long. */
const REFRESH_RETRY_MS = 30_000;

const readSettings = (cfg: Config): Promise<ProducerSettings> =>
  kafkaClientOptions(cfg).then((options) => ({
    ...options,
    compression: cfg.KAFKA_COMPRESSION,
    maxBatchBytes: cfg.KAFKA_MAX_BATCH_BYTES,
  }));

export function producerSettings(cfg: Config): Promise<ProducerSettings> {
  if (!settings) {
    const value = readSettings(cfg).catch((err) => {
      if (settings?.value === value) settings = undefined; // the next call reads again
      throw err;
    });
    settings = { value, readAt: Date.now() };
  } else if (
    cfg.KAFKA_AUTH === "scram-sha-512" &&
    !refreshing &&
    Date.now() - settings.readAt > SCRAM_SETTINGS_MAX_AGE_MS
  ) {
    const current = settings;
    refreshing = readSettings(cfg)
      .then(
        (fresh) => {
          settings = { value: Promise.resolve(fresh), readAt: Date.now() };
        },
        () => {
          current.readAt = Date.now() - SCRAM_SETTINGS_MAX_AGE_MS + REFRESH_RETRY_MS;
        },
      )
      .finally(() => {
        refreshing = undefined;
      });
  }
  return settings.value;
}

/**
 * The producer settings within `timeoutMs`, and the time left of it: in a new sandbox they wait for a broker
 * look-up or a secret, which the publish's or the ping's own bound would not cover.
 */
async function settingsWithin(cfg: Config, timeoutMs: number) {
  const started = performance.now();
  const config = await withTimeout(
    producerSettings(cfg),
    timeoutMs,
    () => new Error(`Kafka settings not ready within ${timeoutMs} ms`),
  );
  return { config, left: Math.max(1, timeoutMs - (performance.now() - started)) };
}

/** Publishes events to the topic within the bound (settings included); rejects on failure or timeout. */
export async function publishEvents(cfg: Config, events: CloudEvent[], timeoutMs: number): Promise<void> {
  if (events.length === 0) return;
  const { config, left } = await settingsWithin(cfg, timeoutMs);
  await publishRecords(toRecords(cfg.KAFKA_TOPIC, events), { timeoutMs: left, config });
}

export async function kafkaPing(cfg: Config, timeoutMs: number): Promise<Check> {
  try {
    const { config, left } = await settingsWithin(cfg, timeoutMs);
    const ping = await pingKafka(left, config);
    return { status: ping.status, latency_ms: ping.status === "ok" ? ping.latency_ms : null };
  } catch {
    return { status: "down", latency_ms: null };
  }
}

// After a failure, requests skip the fast path for a while, so an outage costs each request nothing.
const BACKOFF_MS = 5000;

/**
 * The after-commit fast path. With no older unpublished event for the session, it publishes just this
 * change's events; otherwise the session's whole backlog, oldest first, so the first copy of every event
 * reaches the topic in order. Failures and timeouts leave the rows to the relay.
 */
export function kafkaPublisher(cfg: Config, pool: pg.Pool): EventPublisher {
  let pausedUntil = 0;
  return {
    usesBacklog: true,
    async afterCommit(sessionId, events, backlog) {
      if (Date.now() < pausedUntil) return noteNotSent("backoff");
      const started = Date.now();
      // Within the request's deadline too: a change committed with less time left than the bound would otherwise be
      // answered by the function's timeout, a bare 500 for a change that was made. The relay publishes the rest.
      const budget = Math.min(cfg.KAFKA_PUBLISH_TIMEOUT_MS, timeLeftMs() ?? Number.POSITIVE_INFINITY);
      if (budget <= 0) return noteNotSent("deadline");
      const bound = Math.ceil(budget);
      // A failure after the send (the mark: Postgres gone since the commit) leaves a second copy to the relay, with
      // the same ids, but the events are on the topic: not `events_not_sent`.
      let sent = false;
      const work = (async () => {
        const backlogRows = backlog
          ? await pendingForSession(pool, sessionId, 1000, cfg.KAFKA_MAX_BATCH_BYTES)
          : [];
        const toSend = backlog ? backlogRows.map((r) => r.event) : events;
        const left = bound - (Date.now() - started);
        if (left <= 0) return noteNotSent("timeout");
        await publishEvents(cfg, toSend, left);
        sent = true;
        if (backlog)
          await markPublished(
            pool,
            backlogRows.map((r) => r.id),
          );
        else
          await markEventsPublished(
            pool,
            events.map((e) => e.id),
          );
      })();
      try {
        // The whole path is bounded, not only the send: the first request of a sandbox also looks up the
        // brokers (an AWS call) and connects. What is cut short here finishes or fails in the background.
        await withTimeout(
          work,
          bound,
          () => new KafkaTimeoutError(`after-commit publish took over ${bound} ms`),
        );
      } catch (err) {
        pausedUntil = Date.now() + BACKOFF_MS;
        // For the request's access line: why its events may reach the topic only with the relay's next run.
        if (!sent)
          noteNotSent(
            err instanceof KafkaTimeoutError ? "timeout" : err instanceof Error ? err.name : "error",
          );
      }
    },
  };
}
