import { existsSync } from "node:fs";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { functions } from "#functions/manifest.ts";
import { buildApp } from "../../infra/app.ts";
import type { ChatStack } from "../../infra/chat-stack.ts";
import { FUNCTIONS_DIR } from "../../infra/paths.ts";

/** Handlers are written in parallel with the stack: until they all exist, synth points entries at the stub. */
export const missingHandlers = functions.filter((f) => !existsSync(`${FUNCTIONS_DIR}/${f.handler}.ts`));

export const EXTERNAL_CONTEXT = {
  dataPlane: "external",
  databaseSecretArn: "arn:aws:secretsmanager:us-east-1:000000000000:secret:chat-db-AbCdEf",
  redisUrl: "redis://redis:6379",
  kafkaBrokers: "kafka:9092",
};

export interface Synth {
  app: App;
  stack: ChatStack;
  template: Template;
}

const cache = new Map<string, Synth>();

/**
 * The app exactly as `cdk synth` builds it (cdk-nag included), without esbuild: `aws:cdk:bundling-stacks: []`
 * makes every asset skip bundling, so a synth takes seconds. Cached per context within a test file.
 */
export function synth(context: Record<string, unknown> = {}): Synth {
  const key = JSON.stringify(context);
  let hit = cache.get(key);
  if (!hit) {
    const app = new App({
      context: {
        "aws:cdk:bundling-stacks": [],
        ...(missingHandlers.length ? { stubHandlers: true } : {}),
        ...context,
      },
    });
    const { stack } = buildApp(app);
    hit = { app, stack, template: Template.fromStack(stack) };
    cache.set(key, hit);
  }
  return hit;
}

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown>; DependsOn?: string[] }>;

export function resourcesOf(template: Template, type: string): Resources {
  return template.findResources(type) as Resources;
}

/** Logical id of the Lambda function named `<stack>-<name>`. */
export function functionLogicalId(s: Synth, name: string): string {
  const found = Object.entries(resourcesOf(s.template, "AWS::Lambda::Function")).find(
    ([, r]) => r.Properties?.FunctionName === `${s.stack.stackName}-${name}`,
  );
  if (!found) throw new Error(`no function ${name}`);
  return found[0];
}
