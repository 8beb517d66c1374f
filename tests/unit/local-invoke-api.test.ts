import { describe, expect, it } from "vitest";
import { parseFunctionName } from "../../local/invoke-api.ts";

describe("parseFunctionName", () => {
  it.each([
    ["health", { name: "health" }],
    ["health:%24LATEST", { name: "health", qualifier: "$LATEST" }],
    ["arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Ahealth", { name: "health" }],
    ["arn:aws:lambda:eu-west-1:123456789012:function:health:live", { name: "health", qualifier: "live" }],
    ["123456789012:function:health", { name: "health" }],
  ])("%s", (raw, expected) => {
    expect(parseFunctionName(raw)).toEqual(expected);
  });
});
