import { ChatError } from "./errors.ts";

/** Session metadata is free-form JSON, bounded by its serialized size so a session row stays small. */
export function assertMetadataSize(
  metadata: Record<string, unknown> | undefined,
  maxBytes: number,
): Record<string, unknown> {
  if (metadata === undefined) return {};
  const bytes = Buffer.byteLength(JSON.stringify(metadata), "utf8");
  if (bytes > maxBytes) {
    throw new ChatError("validation_failed", `metadata must be at most ${maxBytes} bytes of JSON`, {
      errors: [{ path: "metadata", message: `at most ${maxBytes} bytes` }],
    });
  }
  if (JSON.stringify(metadata).includes("\\u0000")) {
    throw new ChatError("validation_failed", "metadata must not contain NUL characters", {
      errors: [{ path: "metadata", message: "no NUL characters" }],
    });
  }
  return metadata;
}
