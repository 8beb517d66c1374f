import { describe, expect, it } from "vitest";
import { type FunctionSpec, functions } from "#functions/manifest.ts";
import { checkFunctions } from "#functions/manifest-check.ts";
import { startRunner } from "../../local/server.ts";

/** A throwaway HTTP entry, as a developer adding an endpoint writes one (never loaded: the runner refuses first). */
const endpoint = (name: string, method: "GET" | "POST", path: string): FunctionSpec => ({
  name,
  handler: name,
  description: `${name}, added for this test`,
  route: { method, path },
  uses: ["postgres"],
  memoryMb: 256,
  timeoutSeconds: 10,
});

const refused: [string, FunctionSpec[], RegExp][] = [
  [
    "two variable names at the path's first level",
    [endpoint("tenant-get", "GET", "/{tenant}"), endpoint("org-get", "GET", "/{org}/settings")],
    /org-get: \{org\} in \/\{org\}\/settings is \{tenant\} at the same level in tenant-get's route/,
  ],
  [
    "a path variable named otherwise than a sibling route's at its level (API Gateway's ConflictException)",
    [endpoint("session-export", "GET", "/sessions/{id}/export")],
    /session-export: \{id\} in \/sessions\/\{id\}\/export is \{session_id\} at the same level in session-get's route/,
  ],
  [
    "a copied entry whose route was left as it was",
    [endpoint("session-export", "GET", "/sessions/{session_id}")],
    /session-export: route GET \/sessions\/\{session_id\} is session-get's already/,
  ],
  [
    "a copied entry whose name was left as it was",
    [endpoint("session-get", "GET", "/sessions/{session_id}/export")],
    /the name session-get is taken twice/,
  ],
  [
    "a second $default route",
    [{ ...endpoint("fallback", "GET", "/x"), route: undefined, defaultRoute: true }],
    /more than one \$default route: route-not-found, fallback/,
  ],
];

describe("the function list's own rules (functions/manifest-check.ts)", () => {
  it("the manifest keeps them", () => {
    expect(() => checkFunctions(functions)).not.toThrow();
  });

  it("a new route beside the others, its variable named as theirs, keeps them", () => {
    const more = [
      endpoint("session-export", "GET", "/sessions/{session_id}/export"),
      endpoint("message-get", "GET", "/sessions/{session_id}/messages/{message_id}"),
    ];
    expect(() => checkFunctions([...functions, ...more])).not.toThrow();
  });

  // A level is the literal path up to it: /users/{user_id} is beside /sessions/{session_id}, not at its level.
  it("a variable of another name under another parent keeps them", () => {
    expect(() =>
      checkFunctions([...functions, endpoint("user-get", "GET", "/users/{user_id}")]),
    ).not.toThrow();
  });

  it.each(refused)("refuses %s", (_what, more, message) => {
    expect(() => checkFunctions([...functions, ...more])).toThrow(message);
  });

  // The runner served the first of two entries with one route (or name), where the stack fails to synthesize,
  // and the conflicting variable until the deploy, where API Gateway refuses it.
  it.each(refused)("the local runner refuses to start with %s", async (_what, more, message) => {
    await expect(
      startRunner({ port: 0, functions: [...functions, ...more], schedules: false, log: () => {} }),
    ).rejects.toThrow(message);
  });
});
