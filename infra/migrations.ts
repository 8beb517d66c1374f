import { join } from "node:path";
import { CustomResource, Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import * as logs from "aws-cdk-lib/aws-logs";
import * as cr from "aws-cdk-lib/custom-resources";
import { Construct } from "constructs";
import { ChatFunction, type ChatFunctionDefaults } from "./chat-function.ts";
import { type DataPlane, MIGRATOR_USES } from "./data-plane.ts";
import { migrationsHash } from "./handlers/migration-set.ts";
import { invokeVersionsFinding } from "./nag.ts";
import { MIGRATIONS_DIR, REPO_ROOT } from "./paths.ts";

export interface MigrationsProps {
  defaults: ChatFunctionDefaults;
  dataPlane: DataPlane;
  topic: string;
  partitions: number;
}

/** The migrations' function's timeout: a minute short of the Provider framework's own handler's 15. */
export const MIGRATIONS_TIMEOUT = Duration.minutes(14);

/** Runs infra/handlers/migrate-on-deploy.ts on deploy, with the SQL files copied next to its bundle. */
export class Migrations extends Construct {
  readonly resource: CustomResource;
  readonly handler: ChatFunction;

  constructor(scope: Construct, id: string, props: MigrationsProps) {
    super(scope, id);
    const { dataPlane } = props;
    this.handler = new ChatFunction(this, "Handler", {
      entry: join(REPO_ROOT, "infra/handlers/migrate-on-deploy.ts"),
      description: "Apply SQL migrations and create the Kafka topic on deploy",
      memorySize: 512,
      // Transient errors are retried until the function's time runs out (a new proxy may take minutes to register
      // its target): as long as the Provider framework waits for it, which is 15 minutes.
      timeout: MIGRATIONS_TIMEOUT,
      defaults: props.defaults,
      ...dataPlane.placementFor(MIGRATOR_USES),
      environment: dataPlane.migratorEnvironment,
      bundling: {
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          // migrate.ts looks for ./migrations next to the bundle (import.meta.url).
          afterBundling: (inputDir: string, outputDir: string) => [
            `cp -R "${inputDir}/layers/chat/db/migrations" "${outputDir}/migrations"`,
          ],
        },
      },
    });
    dataPlane.grantMigrator(this.handler);

    const provider = new cr.Provider(this, "Provider", {
      onEventHandler: this.handler,
      logGroup: new logs.LogGroup(this, "ProviderLogs", {
        retention: props.defaults.logRetention,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
    });
    Validations.of(provider).acknowledge({
      id: invokeVersionsFinding(this.handler),
      reason: "The Provider framework may invoke only the migration handler (any version of it).",
    });
    Validations.of(provider).acknowledge({
      id: "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
      reason:
        "The Provider framework's own function, whose role CDK makes: logs on * for a function that runs only during a deploy and takes no input but CloudFormation's. The app's functions write only to their own log groups (infra/execution-role.ts).",
    });
    this.resource = new CustomResource(this, "Resource", {
      serviceToken: provider.serviceToken,
      resourceType: "Custom::ChatMigrations",
      // Past the framework's 15 minutes (its invoke retried once after a failed attempt of 14) CloudFormation
      // would wait its default hour for an answer that never comes: 20 minutes, then the deploy fails.
      serviceTimeout: Duration.minutes(20),
      // Any change re-runs it: a new or edited migration, or a replaced database or cluster (empty, no topic).
      properties: {
        MigrationsHash: migrationsHash(MIGRATIONS_DIR),
        Topic: props.topic,
        Partitions: String(props.partitions),
        ...dataPlane.deployTarget,
      },
    });
    for (const d of dataPlane.dependables) this.resource.node.addDependency(d);
    for (const c of dataPlane.afterMigrations) c.node.addDependency(this.resource);
  }
}
