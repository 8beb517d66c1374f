import { describe, expect, it } from "vitest";
import { requestGuard } from "../../local/request-guard.ts";

const SIGV4 =
  "AWS4-HMAC-SHA256 Credential=x/20250101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0";

describe("requestGuard: Host", () => {
  const guard = requestGuard("127.0.0.1", ["app", "Dev.Example:9000"]);
  const verdict = (host: string | undefined) =>
    guard({ host }, false) === undefined ? "answered" : "refused";

  it.each([
    "localhost",
    "localhost:8000",
    "LOCALHOST:8000",
    "127.0.0.1:8000",
    "127.0.0.2",
    "[::1]:8000",
    "[::1]",
    "app:8000", // LOCAL_ALLOWED_HOSTS: any port
    "dev.example", // case and port of the listed entry do not matter
  ])("answers %s", (host) => {
    expect(verdict(host)).toBe("answered");
  });

  it.each([
    undefined,
    "",
    "evil.example",
    "evil.example:8000",
    "localhost.evil.example", // a name a page's owner controls, rebound to 127.0.0.1
    "127.0.0.1.nip.io",
    "app.evil.example",
    "0.0.0.0:8000", // not the address this runner binds to
    "evil.example@localhost", // not a host at all
    "localhost:8000/",
    "[::2]:8000",
  ])("refuses %s with 403's reason", (host) => {
    expect(verdict(host)).toBe("refused");
    expect(guard({ host }, false)).toMatch(/^Forbidden: .*LOCAL_ALLOWED_HOSTS/);
  });

  it("answers the address the runner binds to, as its own URL (and health canary) names it", () => {
    expect(requestGuard("0.0.0.0", [])({ host: "0.0.0.0:8000" }, false)).toBeUndefined();
    expect(requestGuard("::", [])({ host: "[::]:8000" }, false)).toBeUndefined();
    expect(requestGuard("192.168.1.5", [])({ host: "192.168.1.5:8000" }, false)).toBeUndefined();
    expect(requestGuard("192.168.1.5", [])({ host: "192.168.1.6:8000" }, false)).toBeDefined();
  });
});

describe("requestGuard: Lambda Invoke API", () => {
  const guard = requestGuard("127.0.0.1", []);
  const host = "127.0.0.1:8000";

  it("answers what the AWS SDK sends: SigV4's Authorization, no Origin", () => {
    expect(guard({ host, authorization: SIGV4 }, true)).toBeUndefined();
  });

  it.each([
    ["no Authorization", {}],
    ["another scheme", { authorization: "Bearer abc" }],
    ["the scheme alone", { authorization: "AWS4-HMAC-SHA256" }],
    ["an Origin (a browser's request)", { authorization: SIGV4, origin: "https://evil.example" }],
    ["the opaque Origin of a sandboxed page", { authorization: SIGV4, origin: "null" }],
  ])("refuses %s", (_, headers) => {
    expect(guard({ host, ...headers }, true)).toMatch(/^Forbidden: .*Lambda Invoke API/);
  });

  it("leaves Origin and Authorization to the chat API routes' own handling", () => {
    expect(guard({ host, origin: "https://app.example" }, false)).toBeUndefined();
  });
});
