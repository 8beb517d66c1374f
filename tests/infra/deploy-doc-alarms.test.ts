import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../infra/paths.ts";
import { resourcesOf, synth } from "./synth.ts";

/**
 * What docs/deploy.md tells an operator about the alarms, against the template a default deploy makes: how many
 * there are (Cost), how many the canary has (the checks that prove a deploy) and which ones treat missing data as
 * breaching (an alarm that fires on silence, e.g. on a first deploy or when a schedule stops).
 */
const deploy = readFileSync(`${REPO_ROOT}/docs/deploy.md`, "utf8").replace(/\s+/g, " ");
const alarms = Object.values(resourcesOf(synth().template, "AWS::CloudWatch::Alarm")).map(
  (a) => a.Properties ?? {},
);
const WORDS = ["zero", "one", "two", "three", "four", "five", "six"];

describe("docs/deploy.md's alarms", () => {
  it("counts every alarm of a default deploy, and prices them at $0.10 each", () => {
    const m = /(\d+) alarms \$(\d+\.\d\d)/.exec(deploy);
    expect(m, "Cost: '<N> alarms $<price>'").not.toBeNull();
    expect(Number(m?.[1])).toBe(alarms.length);
    expect(Number(m?.[2])).toBeCloseTo(alarms.length * 0.1, 2);
  });

  it("names as many canary alarms as the stack makes on its metrics", () => {
    const canary = alarms.filter((a) => String(a.MetricName).startsWith("HealthCheck"));
    const m = /the canary's (\w+) alarms/.exec(deploy);
    expect(m, "'the canary's <N> alarms'").not.toBeNull();
    expect(WORDS.indexOf(m?.[1] ?? "")).toBe(canary.length);
  });

  it("names every alarm that treats missing data as breaching, and no other", () => {
    const breaching = alarms
      .filter((a) => a.TreatMissingData === "breaching")
      .map((a) => String(a.MetricName))
      .sort();
    const sentence = /Missing data alarms [^.]*\./.exec(deploy)?.[0] ?? "";
    const named = [...sentence.matchAll(/`(\w+)`/g)].map((m) => m[1]).sort();
    expect(named, sentence).toEqual(breaching);
  });
});
