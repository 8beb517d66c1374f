import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { CHAT_TOPIC, type FunctionSpec, functions } from "#functions/manifest.ts";
import { ChatStack } from "../../infra/chat-stack.ts";
import { readContext } from "../../infra/context.ts";
import { EXTERNAL_CONTEXT, resourcesOf } from "./synth.ts";

/** A throwaway entry, as a developer adding a function writes one (the stub handler stands in for its file). */
const extra = (name: string, fields: Partial<FunctionSpec>): FunctionSpec => ({
  name,
  handler: name,
  description: `a ${name} added for this test`,
  uses: ["postgres"],
  memoryMb: 256,
  timeoutSeconds: 60,
  ...fields,
});

/** The stack built from the manifest plus `more`, without bundling (handlers stubbed), cdk-nag aside. */
function build(more: FunctionSpec[], context: Record<string, unknown> = {}): Template {
  const app = new App({ context: { "aws:cdk:bundling-stacks": [], stubHandlers: true, ...context } });
  const stack = new ChatStack(app, "ChatBackend", {
    ctx: readContext(app.node),
    functions: [...functions, ...more],
  });
  return Template.fromStack(stack);
}

/** The alarms on a metric of the function named `<stack>-<name>`, by metric name. */
function alarmsOf(template: Template, name: string) {
  const fnId = Object.entries(resourcesOf(template, "AWS::Lambda::Function")).find(
    ([, r]) => r.Properties?.FunctionName === `ChatBackend-${name}`,
  )?.[0];
  expect(fnId, name).toBeDefined();
  return Object.values(resourcesOf(template, "AWS::CloudWatch::Alarm"))
    .map((a) => a.Properties ?? {})
    .filter((a) => JSON.stringify(a.Dimensions ?? []).includes(`"Ref":"${fnId}"`));
}

describe("the stack built from the manifest with one more entry", () => {
  it.each([
    ["aws", {}],
    [
      "external, self-managed Kafka",
      {
        ...EXTERNAL_CONTEXT,
        kafkaSecretArn: "arn:aws:secretsmanager:us-east-1:000000000000:secret:kafka-AbCdEf",
      },
    ],
  ])("a second Kafka consumer gets its own lag and error alarms (%s)", (_variant, context) => {
    const template = build([extra("audit-consumer", { kafkaTopic: CHAT_TOPIC })], context);
    for (const name of ["events-consumer", "audit-consumer"]) {
      const metrics = alarmsOf(template, name).map((a) => a.MetricName);
      expect(metrics.sort(), name).toEqual(["Errors", "OffsetLag"]);
    }
  });

  it("a consumer of another topic keeps it under -c kafkaTopic, which renames the chat events' topic only", () => {
    const template = build([extra("audit-consumer", { kafkaTopic: "audit-events" })], {
      ...EXTERNAL_CONTEXT,
      kafkaSecretArn: "arn:aws:secretsmanager:us-east-1:000000000000:secret:kafka-AbCdEf",
      kafkaTopic: "staging.chat-messages",
    });
    const topics = Object.values(resourcesOf(template, "AWS::Lambda::EventSourceMapping")).map(
      (m) => m.Properties?.Topics,
    );
    expect(topics.sort()).toEqual([["audit-events"], ["staging.chat-messages"]]);
  });

  it.each([
    ["cron(0 3 * * ? *)", "irregular: its interval is not known"],
    ["rate(7 days)", "longer than a day"],
  ])("a function on %s (%s) alarms on its first failed run", (schedule) => {
    const [errors, ...others] = alarmsOf(build([extra("nightly-report", { schedule })]), "nightly-report");
    expect(others).toEqual([]);
    // two 5-minute periods in a row never both hold a run of a daily cron; two of a week pass CloudWatch's 7 days
    expect(errors).toMatchObject({
      MetricName: "Errors",
      Period: 300,
      EvaluationPeriods: 1,
      DatapointsToAlarm: 1,
    });
  });

  it("a function on rate(1 day) still alarms on two failed runs in a row, a day each", () => {
    const [errors] = alarmsOf(build([extra("daily-report", { schedule: "rate(1 day)" })]), "daily-report");
    expect(errors).toMatchObject({ Period: 86_400, EvaluationPeriods: 2, DatapointsToAlarm: 2 });
  });

  it.each([
    [
      "a route whose path variable is named otherwise than a sibling's at its level",
      extra("session-export", { route: { method: "GET", path: "/sessions/{id}/export" } }),
      /session-export: \{id\} in \/sessions\/\{id\}\/export is \{session_id\}/,
    ],
    [
      "a copied entry whose route was not changed",
      extra("session-export", { route: { method: "GET", path: "/sessions/{session_id}" } }),
      /session-export: route GET \/sessions\/\{session_id\} is session-get's already/,
    ],
    [
      "a copied entry whose name was not changed",
      extra("session-get", { route: { method: "GET", path: "/sessions/{session_id}/export" } }),
      /the name session-get is taken twice/,
    ],
  ])("refuses %s, naming the entry", (_what, spec, message) => {
    expect(() => build([spec])).toThrow(message);
  });
});
