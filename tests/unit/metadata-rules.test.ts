import { describe, expect, it } from "vitest";
import { ChatError } from "../../layers/chat/chat/errors.ts";
import { assertValidMetadata, MAX_METADATA_DEPTH } from "../../layers/chat/chat/metadata-rules.ts";

/** The field errors assertValidMetadata answers, or null when it takes the metadata. */
function refusal(metadata: Record<string, unknown> | undefined, maxBytes = 4096) {
  try {
    assertValidMetadata(metadata, maxBytes);
    return null;
  } catch (err) {
    if (!(err instanceof ChatError)) throw err;
    return err.errors;
  }
}

/** Objects nested `levels` deep, the metadata itself the first level. */
function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: "x" };
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
}

describe("session metadata rules", () => {
  it("takes no metadata as an empty object", () => {
    expect(assertValidMetadata(undefined, 4096)).toEqual({});
  });

  it(`takes ${MAX_METADATA_DEPTH} levels of objects or arrays, and refuses one more`, () => {
    expect(refusal(nested(MAX_METADATA_DEPTH))).toBeNull();
    const tooDeep = [{ path: "metadata", message: `must be at most ${MAX_METADATA_DEPTH} levels deep` }];
    expect(refusal(nested(MAX_METADATA_DEPTH + 1))).toEqual(tooDeep);
    // an array is a level as an object is
    let arrays: unknown = 1;
    for (let i = 1; i < MAX_METADATA_DEPTH; i++) arrays = [arrays];
    expect(refusal({ a: arrays })).toBeNull();
    expect(refusal({ a: [arrays] })).toEqual(tooDeep);
  });

  it("refuses a string or a key Postgres cannot store in jsonb, naming where it is", () => {
    expect(refusal({ a: { b: "x\u0000y" } })).toEqual([
      { path: "metadata.a.b", message: "must not contain NUL characters" },
    ]);
    expect(refusal({ a: ["ok", "\ud800"] })).toEqual([
      { path: "metadata.a.1", message: "must be valid Unicode (lone surrogate)" },
    ]);
    expect(refusal({ a: { "k\u0000": 1 } })).toEqual([
      { path: "metadata.a.<key>", message: "must not contain NUL characters" },
    ]);
  });

  it("bounds the serialized JSON in UTF-8 bytes, the bound itself included", () => {
    const exactly = (bytes: number, char: string) => {
      const overhead = Buffer.byteLength(JSON.stringify({ s: "" }));
      const s = char.repeat((bytes - overhead) / Buffer.byteLength(char));
      expect(Buffer.byteLength(JSON.stringify({ s }))).toBe(bytes);
      return { s };
    };
    expect(refusal(exactly(100, "a"), 100)).toBeNull();
    const over = [{ path: "metadata", message: "must be at most 100 bytes of JSON" }];
    expect(refusal(exactly(101, "a"), 100)).toEqual(over);
    // "é" is one character and two bytes: counted as two
    expect(refusal(exactly(102, "é"), 100)).toEqual(over);
    expect(refusal(exactly(100, "é"), 100)).toBeNull();
  });
});
