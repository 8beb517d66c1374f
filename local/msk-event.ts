import type { MSKEvent, MSKRecord, MSKRecordHeader } from "aws-lambda";
import { LOCAL_ACCOUNT_ID, localRegion } from "./lambda-context.ts";

/** The parts of a kafkajs message the MSK event carries. */
export interface KafkaMessageLike {
  key: Buffer | null;
  value: Buffer | null;
  offset: string;
  timestamp: string;
  headers?: Record<string, Buffer | string | null | (Buffer | string | null)[] | undefined>;
}

export interface MskBatch {
  topic: string;
  partition: number;
  messages: readonly KafkaMessageLike[];
  bootstrapServers: string[];
}

export const localClusterArn = () =>
  `arn:aws:kafka:${localRegion()}:${LOCAL_ACCOUNT_ID}:cluster/local/00000000-0000-0000-0000-000000000000-1`;

/** A byte as Java's signed byte: Lambda's Java-built poller sends 0x80–0xff as −128…−1. */
const signed = (b: number) => (b > 127 ? b - 256 : b);

// Lambda gives each header its own object, the value as a list of (signed) byte values; a header with no value
// (which kafkajs reads as null) as an empty list, so one odd record cannot stop the bridge.
function headerList(headers: KafkaMessageLike["headers"] = {}): MSKRecordHeader[] {
  return Object.entries(headers).flatMap(([name, value]) =>
    (Array.isArray(value) ? value : value === undefined ? [] : [value]).map((v) => ({
      [name]: v === null ? [] : Array.from(Buffer.from(v), signed),
    })),
  );
}

/** One partition's batch as the Lambda event an MSK event source mapping delivers (key and value base64). */
export function toMskEvent(batch: MskBatch): MSKEvent {
  const records = batch.messages.map((m) => {
    const record = {
      topic: batch.topic,
      partition: batch.partition,
      offset: Number(m.offset),
      timestamp: Number(m.timestamp),
      timestampType: "CREATE_TIME",
      headers: headerList(m.headers),
    } as MSKRecord;
    // Lambda leaves out a null key or value (a tombstone) rather than sending an empty string.
    if (m.key !== null) record.key = m.key.toString("base64");
    if (m.value !== null) record.value = m.value.toString("base64");
    return record;
  });
  return {
    eventSource: "aws:kafka",
    eventSourceArn: localClusterArn(),
    bootstrapServers: batch.bootstrapServers.join(","),
    records: { [`${batch.topic}-${batch.partition}`]: records },
  };
}
