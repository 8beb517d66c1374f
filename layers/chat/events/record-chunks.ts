/** A record as the producer sends it. */
export interface OutgoingRecord {
  topic: string;
  key: string;
  value: string;
  headers: Record<string, string>;
}

/**
 * What a record adds to a produce request beyond its key, value and header bytes: the record's varint
 * lengths, offset and timestamp deltas (≤ 25 bytes), each header's two varint lengths, and a share of the
 * record batch's 61-byte header. Rounded up: the bound only has to be safe, not exact.
 */
const RECORD_OVERHEAD = 64;
const HEADER_OVERHEAD = 10;

/** The bytes a record takes in a produce request (uncompressed), as an upper estimate. */
export function recordBytes(r: OutgoingRecord): number {
  let n = RECORD_OVERHEAD + Buffer.byteLength(r.key) + Buffer.byteLength(r.value);
  for (const name in r.headers)
    n += HEADER_OVERHEAD + Buffer.byteLength(name) + Buffer.byteLength(r.headers[name] as string);
  return n;
}

/**
 * Splits records, in order, into consecutive runs of at most maxBytes each, so that no produce request
 * exceeds what a broker accepts (Kafka's `message.max.bytes` bounds each partition's record batch; a
 * request's total bounds every batch in it). A broker refuses a too-large batch whatever the retries, so a
 * relay sending an unbounded batch would retry the same refused batch forever and hold every later event
 * back. A record larger than maxBytes on its own gets a run of its own (config keeps that from happening).
 */
export function chunkRecords(records: OutgoingRecord[], maxBytes: number): OutgoingRecord[][] {
  const chunks: OutgoingRecord[][] = [];
  let chunk: OutgoingRecord[] = [];
  let bytes = 0;
  for (const r of records) {
    const size = recordBytes(r);
    if (chunk.length > 0 && bytes + size > maxBytes) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(r);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}
