import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { EXTERNAL_CONTEXT, resourcesOf, synth } from "./synth.ts";

/**
 * CloudFormation's own linter over the synthesized templates: it checks every property against the resource
 * types' registry schemas (names, types, allowed values, required keys), which CDK's L1 typings and our
 * assertions do not, and which would otherwise first fail at `cdk deploy`. cfn-lint is a Python tool; it is on
 * this project's CI machines (pip), not in npm: without it these tests are skipped and say so.
 */
const cfnLint = spawnSync("cfn-lint", ["--version"], { encoding: "utf8" });
const available = cfnLint.status === 0;

/**
 * Findings that are not faults of the template, each for a reason that holds whatever the stack grows into:
 * - W3005: CDK writes a DependsOn next to a GetAtt of the same resource (its service roles), redundant but valid.
 * - W3691: cfn-lint's table lists a bare major ("17", as CDK's PostgresEngineVersion.VER_17 writes it) as
 *   deprecated; RDS takes a major and picks its default minor.
 */
const IGNORED = ["W3005", "W3691"];

interface Finding {
  Rule: { Id: string };
  Message: string;
  Location: { Path: (string | number)[] };
}

const VARIANTS: Record<string, Record<string, string>> = {
  "aws data plane, defaults": {},
  "aws data plane, every option on": {
    corsOrigins: "https://app.example",
    alarmEmail: "oncall@example.com",
    sessionRetentionDays: "30",
    tracing: "true",
    dbMultiAz: "true",
    responder: "bedrock",
    bedrockModelId: "anthropic.claude-3-5-haiku-20241022-v1:0",
    layerMode: "bundled",
  },
  "external data plane, self-managed Kafka and Redis secrets": {
    ...EXTERNAL_CONTEXT,
    kafkaSecretArn: "arn:aws:secretsmanager:us-east-1:000000000000:secret:kafka-AbCdEf",
    redisSecretArn: "arn:aws:secretsmanager:us-east-1:000000000000:secret:chat-redis-AbCdEf",
  },
};

const dir = mkdtempSync(join(tmpdir(), "cfn-lint-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function lint(name: string, template: unknown): Finding[] {
  const file = join(dir, `${name.replace(/\W+/g, "-")}.json`);
  writeFileSync(file, JSON.stringify(template));
  // exit status is a bit mask of the levels found; the JSON on stdout is the whole answer
  const out = spawnSync("cfn-lint", ["--format", "json", "--ignore-checks", ...IGNORED, "--", file], {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (out.error) throw out.error;
  return JSON.parse(out.stdout || "[]") as Finding[];
}

describe.skipIf(!available)(
  `cfn-lint (${available ? cfnLint.stdout.trim() : "not installed: skipped"})`,
  () => {
    it.each(Object.entries(VARIANTS))("%s: no error and no warning", (name, context) => {
      const s = synth(context);
      const template = s.template.toJSON();
      // Tags on RDS Proxy's target group: CDK's L1 (from the current registry schema) takes them and Tags.of(app)
      // adds them; cfn-lint's bundled schema predates them. Accepted on that one path only.
      const targetGroups = Object.keys(resourcesOf(s.template, "AWS::RDS::DBProxyTargetGroup"));
      const findings = lint(name, template).filter(
        (f) =>
          !(
            f.Rule.Id === "E3002" &&
            targetGroups.includes(String(f.Location.Path[1])) &&
            f.Message.includes("'Tags' was unexpected")
          ),
      );
      expect(findings.map((f) => `${f.Rule.Id} ${f.Location.Path.join("/")}: ${f.Message}`)).toEqual([]);
    });

    it("finds a fault when there is one (the linter is really run on what is written)", () => {
      const template = synth({}).template.toJSON() as {
        Resources: Record<string, { Type: string; Properties: object }>;
      };
      const [id, fn] =
        Object.entries(template.Resources).find(([, r]) => r.Type === "AWS::Lambda::Function") ?? [];
      if (!id || !fn) throw new Error("no function in the template");
      const broken = structuredClone(template);
      broken.Resources[id] = {
        ...fn,
        Properties: { ...fn.Properties, Runtime: "nodejs99.x", MemorySize: 64 },
      };
      const faults = lint("broken", broken).map(
        (f) => `${f.Location.Path.slice(0, 4).join("/")} ${f.Rule.Id[0]}`,
      );
      expect(faults).toEqual(
        expect.arrayContaining([
          `Resources/${id}/Properties/Runtime E`,
          `Resources/${id}/Properties/MemorySize E`,
        ]),
      );
    });
  },
);
