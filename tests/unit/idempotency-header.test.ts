import { describe, expect, it } from "vitest";
import { idempotencyRequest } from "../../functions/http/idempotency-header.ts";
import type { ChatError } from "../../layers/chat/chat/errors.ts";

const read = (key: string | undefined, minLength?: number) =>
  idempotencyRequest(
    key === undefined ? {} : { "idempotency-key": key },
    "messages-post:s",
    { a: 1 },
    minLength,
  );
const refusal = (key: string, minLength?: number) => {
  try {
    read(key, minLength);
  } catch (err) {
    return (err as ChatError).errors?.[0]?.path;
  }
  return "taken";
};

describe("Idempotency-Key", () => {
  it("is absent: the request is not idempotent", () => {
    expect(read(undefined)).toBeUndefined();
  });

  it("takes 1–255 visible ASCII characters, ! to ~, and refuses a 256th", () => {
    for (const key of ["!", "~", "a".repeat(255), "!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~"])
      expect(refusal(key), key).toBe("taken");
    expect(refusal("a".repeat(256))).toBe("headers.idempotency-key");
  });

  it("refuses a space, DEL, a control character or a non-ASCII letter anywhere in it", () => {
    for (const key of ["a b", "a\u007f", "\u0001a", "clé", ""])
      expect(refusal(key), JSON.stringify(key)).toBe("headers.idempotency-key");
  });

  it("at a minimum length, takes exactly that many and asks for a random key below it", () => {
    expect(refusal("a".repeat(16), 16)).toBe("taken");
    try {
      read("a".repeat(15), 16);
      expect.unreachable();
    } catch (err) {
      expect((err as ChatError).message).toBe(
        "Idempotency-Key must be 16–255 visible ASCII characters (use a random key, such as a UUID)",
      );
    }
  });

  it("hashes the request only when asked, after the service validated it: hostile input is never hashed first", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const req = idempotencyRequest({ "idempotency-key": "k" }, "scope", cyclic);
    expect(req?.key).toBe("k");
    expect(() => req?.requestHash).toThrow();
    // the same request hashes alike; the key is part of the hash (a key's record answers only its own key)
    const a = read("key-1");
    expect(a?.requestHash).toBe(read("key-1")?.requestHash);
    expect(a?.requestHash).not.toBe(read("key-2")?.requestHash);
  });
});
