import { readFileSync } from "node:fs";
import { join } from "node:path";
import { App, Tags, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { ChatStack } from "./chat-stack.ts";
import { readContext } from "./context.ts";
import { REPO_ROOT } from "./paths.ts";

/**
 * The app with the repository's cdk.json context under the CLI's. The CLI reads cdk.json from its working
 * directory only, so a synth from another folder (`cdk synth --app "node <repo>/infra/app.ts"`, which
 * infra/paths.ts supports) would lose its feature flags (every role's policy comes out otherwise: a deploy updates
 * them all) and any setting an operator keeps there (an alarm email, a bootstrap qualifier). Context from the
 * command line or the CLI's own cdk.json still wins.
 */
export function appWithRepoContext(): App {
  const { context } = JSON.parse(readFileSync(join(REPO_ROOT, "cdk.json"), "utf8")) as {
    context?: Record<string, unknown>;
  };
  return new App({ context: context ?? {} });
}

/**
 * `cdk synth|deploy` entry (cdk.json: `node infra/app.ts`, run by Node 24's type stripping). Environment-agnostic:
 * no account or region is looked up, so synth needs no credentials; deploy uses the CLI's profile.
 */
export function buildApp(app = appWithRepoContext()): { app: App; stack: ChatStack } {
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
