import { invalid, textIssue } from "./content-rules.ts";

export const MAX_METADATA_DEPTH = 16;

/**
 * Session metadata: free-form JSON, at most MAX_METADATA_DEPTH levels deep, every key and string storable
 * in jsonb, and bounded by its serialized size so a session row stays small. Walked without recursion, so
 * hostile nesting cannot overflow the stack. A number too large for a double is refused rather than stored as
 * something else (JSON.parse makes 1e400 Infinity, which JSON and jsonb store as null), and so is an integer
 * beyond what a double holds exactly.
 */
export function assertValidMetadata(
  metadata: Record<string, unknown> | undefined,
  maxBytes: number,
): Record<string, unknown> {
  if (metadata === undefined) return {};
  const stack: { value: unknown; depth: number; path: string }[] = [
    { value: metadata, depth: 1, path: "metadata" },
  ];
  while (stack.length > 0) {
    const { value, depth, path } = stack.pop() as (typeof stack)[number];
    if (typeof value === "string") {
      const issue = textIssue(value);
      if (issue) throw invalid(path, issue);
    } else if (typeof value === "number") {
      if (!Number.isFinite(value)) throw invalid(path, "must be a number a double can hold");
      // JSON exchanges integers exactly only within ±(2^53 − 1) (RFC 8259 §6): a 64-bit id beyond it would be
      // stored rounded. Such ids go as strings.
      if (Number.isInteger(value) && !Number.isSafeInteger(value))
        throw invalid(path, "must be an integer within ±9007199254740991 (send a larger id as a string)");
    } else if (value !== null && typeof value === "object") {
      if (depth > MAX_METADATA_DEPTH)
        throw invalid("metadata", `must be at most ${MAX_METADATA_DEPTH} levels deep`);
      for (const [key, child] of Object.entries(value)) {
        const issue = textIssue(key);
        if (issue) throw invalid(`${path}.<key>`, issue);
        stack.push({ value: child, depth: depth + 1, path: `${path}.${key}` });
      }
    }
  }
  const bytes = Buffer.byteLength(JSON.stringify(metadata), "utf8");
  if (bytes > maxBytes) throw invalid("metadata", `must be at most ${maxBytes} bytes of JSON`);
  return metadata;
}
