import { describe, expect, it } from "vitest";
import { noneMatchHits } from "../../functions/http/if-none-match.ts";

// A poll's If-None-Match against the history's ETag (a weak tag of the session's generation): 304 when it hits.
describe("noneMatchHits", () => {
  it.each([
    ['W/"7"', true],
    ['"7"', true], // weak comparison: W/ aside, the opaque tags are equal
    ['W/"6", W/"7"', true],
    [' W/"5" ,W/"7" ', true],
    ["*", true],
    ['W/"6"', false],
    ['W/"70"', false],
    ['W/"7', false],
    ['"W/7"', false], // W/ only as a prefix: inside the quotes it is part of the opaque tag
    ["7", false],
    ["", false],
    [undefined, false],
  ])("%s: %s", (header, hits) => {
    expect(noneMatchHits(header, 'W/"7"')).toBe(hits);
  });
});
