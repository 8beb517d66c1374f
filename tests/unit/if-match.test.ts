import { describe, expect, it } from "vitest";
import { underIfMatch, versionsFromIfMatch } from "../../functions/http/if-match.ts";
import { HttpProblem } from "../../functions/http/problem.ts";
import { ChatError } from "../../layers/chat/chat/errors.ts";

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as ChatError).code;
  }
  return "no error";
};

describe("versionsFromIfMatch (RFC 9110 §13.1.1 over message versions)", () => {
  it.each([
    [undefined, undefined],
    ["*", undefined],
    [" * ", undefined],
    ['"3"', [3]],
    ["3", [3]],
    ['W/"3"', []],
    ['"1", W/"2", 3', [1, 3]],
    ['"1",,"2"', [1, 2]],
    ['"999999999"', [999999999]],
  ])("%j names versions %j", (header, versions) => {
    expect(versionsFromIfMatch(header)).toEqual(versions);
  });

  it.each([
    ",",
    " , ",
    "",
    '"1"x',
    'x"1"',
    '"abc"',
    '"1234567890"',
    "1234567890",
    '""',
    "W/3",
    '"1" "2"',
    '*,"1"',
  ])("%j is a 400 at headers.if-match", (header) => {
    expect(codeOf(() => versionsFromIfMatch(header))).toBe("validation_failed");
    try {
      versionsFromIfMatch(header);
    } catch (err) {
      expect((err as ChatError).errors).toEqual([{ path: "headers.if-match", message: expect.any(String) }]);
    }
  });
});

describe("underIfMatch", () => {
  const conflict = () => Promise.reject(new ChatError("version_conflict", "the message is at version 4"));

  it("turns the service's version_conflict into 412 precondition_failed, with the service's reason", async () => {
    const err = await underIfMatch([3], conflict).catch((e) => e);
    expect(err).toBeInstanceOf(HttpProblem);
    expect([err.code, err.message]).toEqual(["precondition_failed", "the message is at version 4"]);
  });

  it("says why only weak tags could never match, or the caller's reason when it gives one", async () => {
    expect((await underIfMatch([], conflict).catch((e) => e)).message).toBe(
      "a weak entity tag never matches If-Match",
    );
    expect((await underIfMatch([], conflict, "because").catch((e) => e)).message).toBe("because");
  });

  it("leaves a version_conflict without If-Match (expected_version) and every other error as they are", async () => {
    expect((await underIfMatch(undefined, conflict).catch((e) => e)).code).toBe("version_conflict");
    const notFound = new ChatError("message_not_found", "no such message");
    expect(await underIfMatch([1], () => Promise.reject(notFound)).catch((e) => e)).toBe(notFound);
    expect(await underIfMatch([1], async () => "done")).toBe("done");
  });
});
