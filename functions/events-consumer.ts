import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import type { MSKEvent } from "aws-lambda";
import { getPool } from "#chat/db/pool.ts";
import type { CloudEvent } from "#chat/events/cloudevents.ts";
import { applyEvents, parseEvent } from "#chat/projection/activity-projection.ts";
import { logger } from "./http/logger.ts";

export interface ConsumerResult {
  records: number;
  applied: number;
  duplicates: number;
  /** Records that are not valid chat events: reported here and in the log, then skipped (retrying cannot fix them). */
  rejected: { partition: string; offset: number; reason: string }[];
}

/**
 * MSK event source → per-session activity projection. Database failures throw, so Lambda redelivers the
 * batch; redelivery is exact because the projection dedupes by event id.
 */
export const handler = middy<MSKEvent, ConsumerResult>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .handler(async (event) => {
    const events: CloudEvent[] = [];
    const rejected: ConsumerResult["rejected"] = [];
    for (const [partition, records] of Object.entries(event.records ?? {})) {
      for (const record of records) {
        const value = record.value ? Buffer.from(record.value, "base64").toString("utf8") : "";
        const parsed = parseEvent(value);
        if (parsed) events.push(parsed);
        else rejected.push({ partition, offset: Number(record.offset), reason: "not a chat CloudEvent" });
      }
    }
    const outcome = await applyEvents(await getPool(), events);
    if (rejected.length) logger.warn("rejected records", { rejected });
    return { records: events.length + rejected.length, ...outcome, rejected };
  });
