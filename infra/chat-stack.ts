import { readFileSync } from "node:fs";
import { CfnOutput, Duration, Stack, type StackProps } from "aws-cdk-lib";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { configSchema } from "#chat/config.ts";
import {
  type Backend,
  consumedTopic,
  DEFAULT_KAFKA_BATCH_SIZE,
  type FunctionSpec,
  functions as manifestFunctions,
} from "#functions/manifest.ts";
import { checkFunctions } from "#functions/manifest-check.ts";
import { grantBedrockInvoke } from "./bedrock-access.ts";
import { ChatFunction, type ChatFunctionDefaults } from "./chat-function.ts";
import type { ChatContext } from "./context.ts";
import { DataPlane, reachesDataPlane } from "./data-plane.ts";
import { DependenciesLayer } from "./dependencies-layer.ts";
import { ChatHttpApi } from "./http-api.ts";
import { Migrations } from "./migrations.ts";
import { HealthAlarms } from "./monitoring.ts";
import { FUNCTIONS_DIR, REPO_ROOT, STUB_HANDLER } from "./paths.ts";
import { ChatSchedules } from "./schedules.ts";

/** The one function that needs no data plane: it calls the public API, so it runs outside the VPC. */
export const HEALTH_CANARY = "health-canary";
export const MAINTENANCE = "maintenance";

export interface ChatStackProps extends StackProps {
  ctx: ChatContext;
  /** Defaults to the manifest; tests build from a list with an extra entry, as the local runner's option does. */
  functions?: readonly FunctionSpec[];
}

/** The interval of a `rate(N unit)` schedule expression; undefined for `cron(...)`. */
export function rateInterval(expression: string): Duration | undefined {
  const m = expression.match(/^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2] as string;
  if (unit.startsWith("minute")) return Duration.minutes(n);
  if (unit.startsWith("hour")) return Duration.hours(n);
  return Duration.days(n);
}

/** "sessions-create" → "SessionsCreate": construct ids (and so logical ids) that read like the manifest. */
export const constructId = (name: string) =>
  name.replace(/(^|-)([a-z0-9])/g, (_m, _dash: string, c: string) => c.toUpperCase());

/** A manifest entry must say what it uses: a forgotten field would deploy a function with no access at all. */
function usesOf(spec: FunctionSpec): readonly Backend[] {
  if (!spec.uses)
    throw new Error(`functions/manifest.ts: ${spec.name} does not say what it uses (uses: [...])`);
  return spec.uses;
}

function retention(days: number): logs.RetentionDays {
  if (!Object.values(logs.RetentionDays).includes(days))
    throw new Error(`logRetentionDays ${days} is not a CloudWatch retention`);
  return days as logs.RetentionDays;
}

/** Every function of functions/manifest.ts, its trigger (route, schedule or topic), the data plane and alarms. */
export class ChatStack extends Stack {
  readonly chatFunctions = new Map<string, ChatFunction>();
  /** The chat events' topic (context kafkaTopic). */
  private readonly kafkaTopic: string;
  /** Functions with a Kafka event source mapping. */
  private readonly consumers: [name: string, fn: ChatFunction][] = [];

  constructor(scope: Construct, id: string, props: ChatStackProps) {
    super(scope, id, props);
    const { ctx } = props;
    this.kafkaTopic = ctx.kafkaTopic;
    const functions = props.functions ?? manifestFunctions;
    checkFunctions(functions);
    const runtimeDefaults = configSchema.parse({});
    const version = (JSON.parse(readFileSync(`${REPO_ROOT}/package.json`, "utf8")) as { version: string })
      .version;
    const modelId = ctx.bedrockModelId ?? runtimeDefaults.BEDROCK_MODEL_ID;
    // The stack's own name by default (ChatBackend's was always ChatBackend): a second stack's functions must not
    // report into the metrics the first one's alarms watch.
    const metricsNamespace = ctx.metricsNamespace ?? this.stackName;

    const deps = ctx.layerMode === "layer" ? new DependenciesLayer(this, "Dependencies") : undefined;
    const defaults: ChatFunctionDefaults = {
      layerMode: ctx.layerMode,
      layer: deps?.layer,
      layerPackages: deps?.packages ?? [],
      logRetention: retention(ctx.logRetentionDays),
      ...(ctx.tracing ? { tracing: lambda.Tracing.ACTIVE } : {}),
      environment: {
        POWERTOOLS_SERVICE_NAME: ctx.serviceName,
        POWERTOOLS_LOG_LEVEL: ctx.logLevel,
        POWERTOOLS_METRICS_NAMESPACE: metricsNamespace,
        SERVICE_VERSION: version,
        RESPONDER: ctx.responder,
        ...(ctx.responder === "bedrock" ? { BEDROCK_MODEL_ID: modelId } : {}),
        ...(ctx.corsOrigins.length ? { CORS_ORIGINS: ctx.corsOrigins.join(",") } : {}),
      },
    };

    const dataPlane = new DataPlane(this, "DataPlane", {
      ctx,
      topic: ctx.kafkaTopic,
      logRetention: defaults.logRetention,
    });
    const api = new ChatHttpApi(this, "Http", {
      corsOrigins: ctx.corsOrigins,
      throttleRateLimit: ctx.throttleRateLimit,
      throttleBurstLimit: ctx.throttleBurstLimit,
      logRetention: defaults.logRetention,
    });
    const migrations = new Migrations(this, "Migrations", {
      defaults,
      dataPlane,
      topic: ctx.kafkaTopic,
      partitions: ctx.kafkaPartitions,
    });
    const schedules = new ChatSchedules(this, "Schedules");

    for (const spec of functions) {
      const uses = usesOf(spec);
      const fn = new ChatFunction(this, constructId(spec.name), {
        functionName: `${this.stackName}-${spec.name}`,
        entry: ctx.stubHandlers ? STUB_HANDLER : `${FUNCTIONS_DIR}/${spec.handler}.ts`,
        description: spec.description,
        memorySize: spec.memoryMb,
        timeout: Duration.seconds(spec.timeoutSeconds),
        defaults,
        // A function that reaches no backend (the canary, the OpenAPI document) needs no VPC.
        ...(reachesDataPlane(uses) ? dataPlane.placementFor(uses) : {}),
        environment: {
          ...dataPlane.environmentFor(uses),
          ...(spec.name === HEALTH_CANARY ? { HEALTH_URL: `${api.url}health` } : {}),
          // The purge runs in maintenance only; unset (0) keeps sessions for good.
          ...(spec.name === MAINTENANCE && ctx.sessionRetentionDays > 0
            ? { SESSION_RETENTION_DAYS: String(ctx.sessionRetentionDays) }
            : {}),
        },
      });
      this.chatFunctions.set(spec.name, fn);
      // New code expects the new schema: functions update only after the migrations applied.
      fn.node.addDependency(migrations.resource);
      dataPlane.grantClient(fn, uses);
      if (ctx.responder === "bedrock" && uses.includes("responder")) grantBedrockInvoke(fn, modelId);
      this.wire(spec, fn, { api, schedules, dataPlane, migrations });
    }

    const alarms = new HealthAlarms(this, "HealthAlarms", {
      namespace: metricsNamespace,
      service: ctx.serviceName,
      latencyThresholdMs: ctx.healthLatencyThresholdMs,
      alarmEmail: ctx.alarmEmail,
    });
    // The canary has its own alarms; every other scheduled or event-driven function alarms on its errors.
    for (const spec of functions)
      if ((spec.schedule || spec.kafkaTopic) && spec.name !== HEALTH_CANARY)
        alarms.alarmOnErrors(
          `${constructId(spec.name)}Errors`,
          this.chatFunctions.get(spec.name) as ChatFunction,
          spec.schedule ? { interval: rateInterval(spec.schedule) } : undefined,
        );
    alarms.alarmOnServerErrors(api.stage, ctx.http5xxThreshold);
    // Lambda reports OffsetLag only for a Kafka event source, so only where the stack made one.
    // One per consumer, named after it: a second consumer must not collide with the first's alarm.
    for (const [name, consumer] of this.consumers)
      alarms.alarmOnOffsetLag(`${constructId(name)}OffsetLag`, consumer, ctx.offsetLagThreshold);
    alarms.alarmOnRejectedEvents();
    // Without Kafka (an external data plane with no brokers) the relay skips its runs and reports nothing.
    const kafkaEnv = dataPlane.environmentFor(["kafka-produce"]);
    const relayPublishes = !!(kafkaEnv.KAFKA_BROKERS || kafkaEnv.MSK_CLUSTER_ARN);
    alarms.alarmOnOutboxAge(ctx.outboxPendingAgeThresholdSeconds, relayPublishes);
    // The data plane's own: database, proxy and cache (aws), and the consumers' on-failure bucket (both).
    dataPlane.addAlarms(alarms.topic);

    new CfnOutput(this, "ApiUrl", { value: api.url, description: "HTTP API base URL" });
    new CfnOutput(this, "HealthUrl", { value: `${api.url}health` });
    new CfnOutput(this, "AlarmTopicArn", { value: alarms.topic.topicArn });
    new CfnOutput(this, "MigrationsFunction", { value: migrations.handler.functionName });
    if (dataPlane.failedBatches)
      new CfnOutput(this, "FailedBatchesBucket", {
        value: dataPlane.failedBatches.bucket.bucketName,
        description: "where the Kafka event source puts a batch events-consumer failed on (docs/deploy.md)",
      });
  }

  private wire(
    spec: FunctionSpec,
    fn: ChatFunction,
    to: { api: ChatHttpApi; schedules: ChatSchedules; dataPlane: DataPlane; migrations: Migrations },
  ): void {
    if (spec.route) to.api.addRoute(constructId(spec.name), spec.route, fn);
    if (spec.defaultRoute) to.api.addDefaultRoute(constructId(spec.name), fn);
    if (spec.schedule)
      to.schedules.add(constructId(spec.name), spec.schedule, fn, rateInterval(spec.schedule));
    const topic = consumedTopic(spec, this.kafkaTopic);
    if (topic) {
      const mapping = to.dataPlane.addConsumer(
        fn,
        topic,
        `${this.stackName}-${spec.name}`,
        spec.kafkaBatchSize ?? DEFAULT_KAFKA_BATCH_SIZE,
      );
      // The topic is created by the migration resource; the mapping must not start before it exists.
      mapping?.node.addDependency(to.migrations.resource);
      if (mapping) this.consumers.push([spec.name, fn]);
    }
  }
}
