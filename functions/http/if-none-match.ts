/**
 * If-None-Match on a GET (RFC 9110 §13.1.2): true when the header names `etag` by weak comparison (`W/` aside, the
 * opaque tags equal) or is `*` (the representation exists, as any that reaches here does). Then the answer is 304
 * with no body. A value it cannot read matches nothing, so the client just gets the full answer.
 */
export function noneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === "*") return true;
  const opaque = (tag: string) => tag.trim().replace(/^W\//, "");
  const wanted = opaque(etag);
  return header.split(",").some((tag) => opaque(tag) === wanted);
}
