/**
 * The most bytes of message JSON a history page holds. Lambda returns at most 6 MB (6,291,556 bytes) from a
 * synchronous invocation, and the API Gateway response carries the page as a JSON string, in which every `"`
 * and `\` of the page is escaped once more: a page of 3,000,000 bytes takes at most 6,000,000 there. Past it a
 * page holds fewer than `limit` messages and says where the next one starts (`next_after_seq`), as any page does.
 * A page of 200 messages reaches it only if they average 15,000 bytes: long messages, mostly not ASCII.
 */
export const PAGE_MAX_BYTES = 3_000_000;

/**
 * How many items from `first` make the page: at most `limit`, and no more than fit in PAGE_MAX_BYTES (their
 * JSON joined by commas), but always one. `bound` is an upper estimate of an item's JSON bytes, cheap to
 * compute; `bytes` the exact figure, computed only when the estimates do not fit. Every caller cuts the same
 * page from the same messages, whether it holds their JSON text or the messages themselves.
 */
export function pageLength<T>(
  items: readonly T[],
  first: number,
  limit: number,
  bound: (item: T) => number,
  bytes: (item: T) => number,
): number {
  const end = Math.min(items.length, first + limit);
  let estimate = 0;
  for (let i = first; i < end; i++) estimate += bound(items[i] as T) + 1;
  if (estimate <= PAGE_MAX_BYTES) return end - first;
  let total = 0;
  for (let i = first; i < end; i++) {
    total += bytes(items[i] as T) + 1;
    if (total > PAGE_MAX_BYTES && i > first) return i - first;
  }
  return end - first;
}

/** A JSON text's UTF-8 bytes are at most 3 per UTF-16 unit. */
export const jsonTextBound = (json: string): number => json.length * 3;
export const utf8Bytes = (s: string): number => Buffer.byteLength(s);
