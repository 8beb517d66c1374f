import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import middy from "@middy/core";
import type { MSKEvent } from "aws-lambda";
import { getPool } from "#chat/db/pool.ts";
import type { CloudEvent } from "#chat/events/cloudevents.ts";
import { applyEvents, type Rejection, readEvent } from "#chat/projection/activity-projection.ts";
import { LOG_CONTEXT, logger } from "./http/logger.ts";
import { newMetrics, publishMetrics } from "./http/metrics.ts";
import { MIDDY_OPTIONS } from "./http/middy-options.ts";

const metrics = newMetrics();

export interface ConsumerResult {
  records: number;
  applied: number;
  duplicates: number;
  /**
   * Records that are not valid chat events (a newer schema version or event type included): skipped, since
   * retrying cannot fix them; logged with their partition and offset, so they can be replayed from the topic
   * once a consumer that reads them is deployed, and counted in the RejectedEvents metric, which has an alarm.
   */
  rejected: ({ partition: string; offset: number } & Rejection)[];
}

/**
 * MSK event source → per-session activity projection. Database failures throw, so Lambda redelivers the
 * batch; redelivery is exact because the projection dedupes by event id.
 */
export const handler = middy<MSKEvent, ConsumerResult>(MIDDY_OPTIONS)
  .use(injectLambdaContext(logger, LOG_CONTEXT))
  .use(publishMetrics(metrics))
  .handler(async (event) => {
    const events: CloudEvent[] = [];
    const rejected: ConsumerResult["rejected"] = [];
    for (const [partition, records] of Object.entries(event.records ?? {})) {
      for (const record of records) {
        const value = record.value ? Buffer.from(record.value, "base64").toString("utf8") : "";
        const read = readEvent(value);
        if ("event" in read) events.push(read.event);
        else rejected.push({ partition, offset: Number(record.offset), ...read.rejection });
      }
    }
    // Reported before applying: a batch that then fails (and is retried) still shows what it skips.
    metrics.addMetric("RejectedEvents", MetricUnit.Count, rejected.length);
    if (rejected.length) logger.warn("rejected records", { rejected });
    const outcome = await applyEvents(await getPool(), events);
    return { records: events.length + rejected.length, ...outcome, rejected };
  });
