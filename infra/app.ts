import { App, Tags, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { ChatStack } from "./chat-stack.ts";
import { readContext } from "./context.ts";

/**
 * `cdk synth|deploy` entry (cdk.json: `node infra/app.ts`, run by Node 24's type stripping). Environment-agnostic:
 * no account or region is looked up, so synth needs no credentials; deploy uses the CLI's profile.
 */
export function buildApp(app = new App()): { app: App; stack: ChatStack } {
  const ctx = readContext(app.node);
  const stackName = String(app.node.tryGetContext("stackName") ?? "ChatBackend");
  const stack = new ChatStack(app, stackName, {
    ctx,
    description: `chat-backend (dataPlane=${ctx.dataPlane}, layerMode=${ctx.layerMode})`,
  });
  Tags.of(app).add("app", "chat-backend");
  // Any unacknowledged AwsSolutions finding fails synth; acknowledgements sit next to their cause, with a reason.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}

if (import.meta.main) buildApp().app.synth();
