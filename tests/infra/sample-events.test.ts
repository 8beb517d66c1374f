import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cloudEventSchema } from "#chat/events/cloudevents.ts";
import { functions, httpFunctions, scheduledFunctions } from "#functions/manifest.ts";

const DIR = join(import.meta.dirname, "../fixtures/events");
const load = (name: string) => JSON.parse(readFileSync(join(DIR, `${name}.json`), "utf8"));

describe("sample events (tests/fixtures/events, for sam local invoke and handler tests)", () => {
  it("has one event per manifest function and nothing else", () => {
    for (const f of functions) expect(existsSync(join(DIR, `${f.name}.json`)), f.name).toBe(true);
    const names = readdirSync(DIR)
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.replace(/\.json$/, ""));
    expect(names.sort()).toEqual(functions.map((f) => f.name).sort());
  });

  it.each(httpFunctions.map((f) => [f.name, f.route] as const))(
    "%s: HTTP API v2 event for its route",
    (name, route) => {
      const event = load(name);
      expect(event.version).toBe("2.0");
      expect(event.routeKey).toBe(`${route.method} ${route.path}`);
      expect(event.requestContext.routeKey).toBe(event.routeKey);
      expect(event.requestContext.http.method).toBe(route.method);
      // rawPath is the route's path with its {params} filled in from pathParameters.
      const params: Record<string, string> = event.pathParameters ?? {};
      expect(event.rawPath).toBe(
        route.path.replace(/\{(\w+)\}/g, (_m: string, p: string) => params[p] ?? "?"),
      );
      expect(event.requestContext.http.path).toBe(event.rawPath);
      if (event.body !== undefined) expect(() => JSON.parse(event.body)).not.toThrow();
    },
  );

  it.each(functions.filter((f) => f.defaultRoute).map((f) => [f.name] as const))(
    "%s: HTTP API v2 event of the $default route, for a path no route takes",
    (name) => {
      const event = load(name);
      expect(event).toMatchObject({
        version: "2.0",
        routeKey: "$default",
        requestContext: { routeKey: "$default" },
      });
      const method = event.requestContext.http.method;
      expect(httpFunctions.some((f) => f.route.method === method && f.route.path === event.rawPath)).toBe(
        false,
      );
    },
  );

  it.each(scheduledFunctions.map((f) => [f.name] as const))("%s: EventBridge Scheduler event", (name) => {
    const event = load(name);
    expect(event).toMatchObject({ "detail-type": "Scheduled Event", source: "aws.scheduler", detail: "{}" });
    expect(event.resources[0]).toMatch(new RegExp(`:schedule/default/.*${name}$`));
  });

  it.each(functions.filter((f) => f.kafkaTopic).map((f) => [f.name, f.kafkaTopic] as const))(
    "%s: MSK event whose records are chat CloudEvents on %s",
    (name, topic) => {
      const event = load(name);
      expect(event.eventSource).toBe("aws:kafka");
      const records = Object.values(event.records as Record<string, Record<string, unknown>[]>).flat();
      expect(records.length).toBeGreaterThan(0);
      for (const r of records) {
        expect(r.topic).toBe(topic);
        const value = JSON.parse(Buffer.from(String(r.value), "base64").toString("utf8"));
        const parsed = cloudEventSchema.parse(value);
        expect(Buffer.from(String(r.key), "base64").toString("utf8")).toBe(parsed.subject);
        const headers = r.headers as Record<string, number[]>[];
        const ceType = headers.find((h) => "ce_type" in h)?.ce_type ?? [];
        expect(Buffer.from(ceType).toString("utf8")).toBe(parsed.type);
      }
    },
  );
});
