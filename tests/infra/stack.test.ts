import { readFileSync } from "node:fs";
import { Match } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { CORS_ALLOWED_HEADERS, CORS_EXPOSED_HEADERS } from "#functions/http/cors-headers.ts";
import {
  CHAT_TOPIC,
  defaultRouteFunction,
  functions,
  httpFunctions,
  scheduledFunctions,
} from "#functions/manifest.ts";
import { HEALTH_CANARY, MAINTENANCE, rateInterval } from "../../infra/chat-stack.ts";
import { REPO_ROOT } from "../../infra/paths.ts";
import { EXTERNAL_CONTEXT, functionLogicalId, resourcesOf, synth } from "./synth.ts";

const s = synth({
  corsOrigins: "https://app.example",
  alarmEmail: "oncall@example.com",
  sessionRetentionDays: "30",
});
const { template } = s;
const lambdas = resourcesOf(template, "AWS::Lambda::Function");
const arnOf = (logicalId: string) => ({ "Fn::GetAtt": [logicalId, "Arn"] });
const { version } = JSON.parse(readFileSync(`${REPO_ROOT}/package.json`, "utf8")) as { version: string };

describe("functions from the manifest", () => {
  it.each(functions.map((f) => [f.name, f] as const))(
    "%s: nodejs24.x on arm64, sized by the manifest",
    (name, spec) => {
      template.hasResourceProperties("AWS::Lambda::Function", {
        FunctionName: `${s.stack.stackName}-${name}`,
        Runtime: "nodejs24.x",
        Architectures: ["arm64"],
        MemorySize: spec.memoryMb,
        Timeout: spec.timeoutSeconds,
        LoggingConfig: { LogGroup: Match.anyValue() },
        Environment: {
          Variables: Match.objectLike({
            POWERTOOLS_SERVICE_NAME: "chat-backend",
            POWERTOOLS_LOG_LEVEL: "INFO",
            POWERTOOLS_METRICS_NAMESPACE: "ChatBackend",
            NODE_OPTIONS: "--enable-source-maps",
            // what /health and the OpenAPI document report
            SERVICE_VERSION: version,
          }),
        },
      });
    },
  );

  it("gives no routed function longer than API Gateway waits for it (30 s): the client would get a 503 first", () => {
    for (const spec of httpFunctions) expect(spec.timeoutSeconds, spec.name).toBeLessThan(30);
  });

  it("has no function the manifest does not list, besides the migration custom resource", () => {
    const named = Object.values(lambdas)
      .map((r) => r.Properties?.FunctionName)
      .filter((n): n is string => typeof n === "string");
    expect(named.sort()).toEqual(functions.map((f) => `${s.stack.stackName}-${f.name}`).sort());
  });

  it("attaches the dependencies layer to every app function", () => {
    const [layerId] = Object.keys(resourcesOf(template, "AWS::Lambda::LayerVersion"));
    expect(layerId).toBeDefined();
    const appFunctions = Object.entries(lambdas).filter(([, r]) => r.Properties?.Handler === "index.handler");
    expect(appFunctions.length).toBe(functions.length + 1); // + migrate-on-deploy
    for (const [id, r] of appFunctions) expect(r.Properties?.Layers, id).toEqual([{ Ref: layerId }]);
    // pure JS, and published for the functions' arm64
    const layer = resourcesOf(template, "AWS::Lambda::LayerVersion")[layerId ?? ""]?.Properties ?? {};
    expect(layer.CompatibleArchitectures).toContain("arm64");
  });

  it("gives each function its own log group with a retention", () => {
    for (const spec of functions) {
      const id = functionLogicalId(s, spec.name);
      const logging = lambdas[id]?.Properties?.LoggingConfig as { LogGroup: { Ref: string } } | undefined;
      const logGroupRef = logging?.LogGroup.Ref ?? "";
      expect(template.toJSON().Resources[logGroupRef].Properties.RetentionInDays).toBe(30);
    }
  });
});

describe("HTTP API", () => {
  /** The route with this key proxies (payload 2.0) to the named function. */
  function expectRouteTo(routeKey: string, name: string) {
    const routes = resourcesOf(template, "AWS::ApiGatewayV2::Route");
    const match = Object.values(routes).find((r) => r.Properties?.RouteKey === routeKey);
    expect(match, routeKey).toBeDefined();
    const target = JSON.stringify(match?.Properties?.Target);
    const integrationId = /"Ref":"([^"]+)"/.exec(target)?.[1] ?? "";
    const integration = template.toJSON().Resources[integrationId];
    expect(integration.Properties).toMatchObject({
      IntegrationType: "AWS_PROXY",
      PayloadFormatVersion: "2.0",
      IntegrationUri: arnOf(functionLogicalId(s, name)),
    });
  }

  it.each(httpFunctions.map((f) => [f.name, f.route] as const))("routes %s", (name, route) => {
    expectRouteTo(`${route.method} ${route.path}`, name);
  });

  it("sends what no route takes to the manifest's $default function", () => {
    expect(defaultRouteFunction?.name).toBe("route-not-found");
    expectRouteTo("$default", defaultRouteFunction?.name ?? "");
  });

  it("has exactly the manifest's routes, and $default", () => {
    expect(Object.keys(resourcesOf(template, "AWS::ApiGatewayV2::Route")).length).toBe(
      httpFunctions.length + 1,
    );
  });

  it("throttles the $default stage and writes JSON access logs", () => {
    template.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      StageName: "$default",
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
      AccessLogSettings: {
        DestinationArn: Match.anyValue(),
        Format: Match.serializedJson(
          Match.objectLike({
            requestId: "$context.requestId",
            routeKey: "$context.routeKey",
            status: "$context.status",
            // who sent it: what an operator looks at behind a 429 storm (the per-IP limit's key)
            ip: "$context.identity.sourceIp",
          }),
        ),
      },
    });
  });

  it("takes CORS origins from context", () => {
    template.hasResourceProperties("AWS::ApiGatewayV2::Api", {
      ProtocolType: "HTTP",
      CorsConfiguration: Match.objectLike({ AllowOrigins: ["https://app.example"] }),
    });
    template.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: `${s.stack.stackName}-messages-post`,
      Environment: { Variables: Match.objectLike({ CORS_ORIGINS: "https://app.example" }) },
    });
  });

  it("lets a browser preflight every method the manifest routes", () => {
    const [api] = Object.values(resourcesOf(template, "AWS::ApiGatewayV2::Api"));
    const cors = api?.Properties?.CorsConfiguration as { AllowMethods?: string[] } | undefined;
    const allowed = cors?.AllowMethods;
    for (const method of new Set(httpFunctions.map((f) => f.route.method)))
      expect(allowed, method).toContain(method);
  });

  it("configures API Gateway's CORS with the handlers' header lists: it replaces their CORS headers", () => {
    template.hasResourceProperties("AWS::ApiGatewayV2::Api", {
      CorsConfiguration: Match.objectLike({
        AllowHeaders: CORS_ALLOWED_HEADERS,
        ExposeHeaders: CORS_EXPOSED_HEADERS,
        MaxAge: 3600,
      }),
    });
    // what a browser must be able to read: the limiter's headers and the edit's ETag among them
    for (const h of ["ratelimit", "ratelimit-policy", "retry-after", "etag", "x-request-id"])
      expect(CORS_EXPOSED_HEADERS).toContain(h);
  });

  it("outputs what docs/deploy.md lists: the API and health URLs, the alarm topic, the migrations function", () => {
    template.hasOutput("ApiUrl", Match.anyValue());
    expect(JSON.stringify(template.toJSON().Outputs.HealthUrl.Value)).toMatch(/execute-api.*\/health"/);
    template.hasOutput("AlarmTopicArn", {
      Value: { Ref: Object.keys(resourcesOf(template, "AWS::SNS::Topic"))[0] },
    });
    template.hasOutput("MigrationsFunction", Match.anyValue());
  });
});

describe("schedules", () => {
  it.each(scheduledFunctions.map((f) => [f.name, f.schedule] as const))(
    "%s runs on %s",
    (name, expression) => {
      template.hasResourceProperties("AWS::Scheduler::Schedule", {
        ScheduleExpression: expression,
        State: "ENABLED",
        Target: Match.objectLike({ Arn: arnOf(functionLogicalId(s, name)) }),
      });
    },
  );

  it("runs the relay every minute, maintenance hourly and the canary every 5 minutes (README)", () => {
    const schedules = Object.fromEntries(scheduledFunctions.map((f) => [f.name, f.schedule]));
    expect(schedules).toEqual({
      "outbox-relay": "rate(1 minute)",
      maintenance: "rate(1 hour)",
      [HEALTH_CANARY]: "rate(5 minutes)",
    });
  });

  it("does not retry a failed run (the next tick is the retry) nor deliver a tick over a minute late", () => {
    for (const spec of scheduledFunctions) {
      template.hasResourceProperties("AWS::Lambda::EventInvokeConfig", {
        FunctionName: { Ref: functionLogicalId(s, spec.name) },
        MaximumRetryAttempts: 0,
      });
      template.hasResourceProperties("AWS::Scheduler::Schedule", {
        Target: Match.objectLike({
          Arn: arnOf(functionLogicalId(s, spec.name)),
          RetryPolicy: Match.objectLike({ MaximumEventAgeInSeconds: 60 }),
        }),
      });
    }
  });

  // Lambda keeps a throttled asynchronous event, whatever MaximumRetryAttempts says, for MaximumEventAgeInSeconds
  // (6 h when unset): the ticks of a throttled hour would all run late, in a burst. None may outlive its interval.
  it("drops a tick Lambda could not start within the schedule's interval (its own queue, not only Scheduler's)", () => {
    for (const spec of scheduledFunctions) {
      const seconds = Math.max(60, rateInterval(spec.schedule)?.toSeconds() ?? 60);
      template.hasResourceProperties("AWS::Lambda::EventInvokeConfig", {
        FunctionName: { Ref: functionLogicalId(s, spec.name) },
        MaximumEventAgeInSeconds: seconds,
      });
    }
  });

  it("reads rate() intervals (the error alarms' periods), and none of a cron()", () => {
    expect(rateInterval("rate(1 minute)")?.toSeconds()).toBe(60);
    expect(rateInterval("rate(2 hours)")?.toSeconds()).toBe(7200);
    expect(rateInterval("rate(1 day)")?.toSeconds()).toBe(86_400);
    expect(rateInterval("cron(0 3 * * ? *)")).toBeUndefined();
  });

  it("has one schedule per scheduled function", () => {
    expect(Object.keys(resourcesOf(template, "AWS::Scheduler::Schedule")).length).toBe(
      scheduledFunctions.length,
    );
  });

  it("gives maintenance SESSION_RETENTION_DAYS from -c sessionRetentionDays, and no other function", () => {
    const variables = (id: string) =>
      (lambdas[id]?.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)
        ?.Variables ?? {};
    const withIt = Object.keys(lambdas)
      .filter((id) => variables(id).SESSION_RETENTION_DAYS !== undefined)
      .map((id) => [id, variables(id).SESSION_RETENTION_DAYS]);
    expect(withIt).toEqual([[functionLogicalId(s, MAINTENANCE), "30"]]);
  });

  it("gives the canary HEALTH_URL = API URL + /health, outside the VPC", () => {
    const canary = lambdas[functionLogicalId(s, HEALTH_CANARY)]?.Properties ?? {};
    expect(JSON.stringify(canary.Environment)).toMatch(/execute-api.*\/health"/);
    expect(canary.VpcConfig).toBeUndefined();
  });
});

describe("Kafka consumer", () => {
  const consumers = functions.filter((f) => f.kafkaTopic);

  it.each(consumers.map((f) => [f.name, f.kafkaTopic, f.kafkaBatchSize] as const))(
    "%s reads %s from MSK in the manifest's batches (%s)",
    (name, topic, batchSize) => {
      expect(batchSize).toBeGreaterThan(0);
      template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
        FunctionName: { Ref: functionLogicalId(s, name) },
        Topics: [topic],
        StartingPosition: "TRIM_HORIZON",
        BatchSize: batchSize,
        EventSourceArn: { "Fn::GetAtt": [Match.stringLikeRegexp("Kafka"), "Arn"] },
      });
    },
  );

  it.each(consumers.map((f) => [f.name, f.kafkaTopic] as const))(
    "%s consumes the topic the migrations create and the producers write, as group <stack>-<name>",
    (name, topic) => {
      const [migration] = Object.values(resourcesOf(template, "Custom::ChatMigrations"));
      expect(migration?.Properties?.Topic).toBe(topic);
      template.hasResourceProperties("AWS::Lambda::Function", {
        FunctionName: `${s.stack.stackName}-outbox-relay`,
        Environment: { Variables: Match.objectLike({ KAFKA_TOPIC: topic }) },
      });
      template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
        FunctionName: { Ref: functionLogicalId(s, name) },
        AmazonManagedKafkaEventSourceConfig: { ConsumerGroupId: `${s.stack.stackName}-${name}` },
      });
    },
  );

  it("starts consuming only after the deploy created the topic", () => {
    const [migrationId] = Object.keys(resourcesOf(template, "Custom::ChatMigrations"));
    for (const mapping of Object.values(resourcesOf(template, "AWS::Lambda::EventSourceMapping")))
      expect(mapping.DependsOn).toContain(migrationId);
  });
});

describe("migrations on deploy", () => {
  it("re-runs when the migrations folder changes, and creates the topic", () => {
    template.hasResourceProperties("Custom::ChatMigrations", {
      MigrationsHash: Match.stringLikeRegexp("^[0-9a-f]{64}$"),
      Topic: CHAT_TOPIC,
      Partitions: "6",
    });
  });

  it("re-runs when the database or the MSK cluster is replaced: their ARNs are properties too", () => {
    const [instanceId] = Object.keys(resourcesOf(template, "AWS::RDS::DBInstance"));
    const [clusterId] = Object.keys(resourcesOf(template, "AWS::MSK::ServerlessCluster"));
    const [migration] = Object.values(resourcesOf(template, "Custom::ChatMigrations"));
    expect(migration?.Properties?.KafkaCluster).toEqual({ "Fn::GetAtt": [clusterId, "Arn"] });
    const database = JSON.stringify(migration?.Properties?.Database);
    expect(database).toContain(":db:");
    expect(database).toContain(`{"Ref":"${instanceId}"}`);
  });

  it("gives the migrations as long to retry as the custom resource framework waits, and no longer", () => {
    const timeoutOf = (description: RegExp) =>
      Object.values(lambdas)
        .filter((r) => description.test(String(r.Properties?.Description ?? "")))
        .map((r) => r.Properties?.Timeout);
    const [migrations] = timeoutOf(/^Apply SQL migrations/);
    const [framework] = timeoutOf(/onEvent/);
    expect(migrations).toBe(14 * 60);
    expect(framework).toBe(15 * 60);
    // and CloudFormation gives up on an answer after 20 minutes, not its default hour
    const [resource] = Object.values(resourcesOf(template, "Custom::ChatMigrations"));
    expect(Number(resource?.Properties?.ServiceTimeout)).toBe(20 * 60);
  });

  it("reaches the database as its owner and the cluster it creates the topic on", () => {
    const [migrations] = Object.values(lambdas).filter((r) =>
      /^Apply SQL migrations/.test(String(r.Properties?.Description)),
    );
    const environment = migrations?.Properties?.Environment as
      | { Variables?: Record<string, unknown> }
      | undefined;
    expect(Object.keys(environment?.Variables ?? {})).toEqual(
      expect.arrayContaining(["DATABASE_SECRET_ARN", "MSK_CLUSTER_ARN", "KAFKA_TOPIC"]),
    );
  });

  it("runs only once the proxy has registered the database as its target", () => {
    const [targetGroupId] = Object.keys(resourcesOf(template, "AWS::RDS::DBProxyTargetGroup"));
    const [resource] = Object.values(resourcesOf(template, "Custom::ChatMigrations"));
    expect(resource?.DependsOn).toContain(targetGroupId);
  });

  it("updates every function only after the migrations applied", () => {
    const [migrationId] = Object.keys(resourcesOf(template, "Custom::ChatMigrations"));
    for (const spec of functions) {
      const fn = template.toJSON().Resources[functionLogicalId(s, spec.name)];
      expect(fn.DependsOn, spec.name).toContain(migrationId);
    }
  });
});

describe("alarms", () => {
  it.each([
    ["HealthCheckFailed", "Sum"],
    ["HealthCheckLatency", "Maximum"],
    ["HealthCheckDegraded", "Sum"],
  ])("alarms on %s to SNS", (metricName, statistic) => {
    const [topicId] = Object.keys(resourcesOf(template, "AWS::SNS::Topic"));
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "ChatBackend",
      MetricName: metricName,
      Statistic: statistic,
      Dimensions: [{ Name: "service", Value: "chat-backend" }],
      AlarmActions: [{ Ref: topicId }],
    });
  });

  it("alarms when the canary fails two runs in a row (its 5-minute schedule, one run per period)", () => {
    expect(rateInterval(functions.find((f) => f.name === HEALTH_CANARY)?.schedule ?? "")?.toMinutes()).toBe(
      5,
    );
    expect(alarmOn("HealthCheckFailed")).toMatchObject({
      Period: 300,
      EvaluationPeriods: 2,
      DatapointsToAlarm: 2,
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
    });
  });

  it("alarms when GET /health answers degraded on three canary runs in a row, and not on its silence", () => {
    expect(alarmOn("HealthCheckDegraded")).toMatchObject({
      Period: 300,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      TreatMissingData: "notBreaching",
    });
  });

  it("alarms when GET /health is slower than healthLatencyThresholdMs for 15 minutes, or the canary is silent", () => {
    expect(alarmOn("HealthCheckLatency")).toMatchObject({
      Period: 300,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      Threshold: 2000,
      ComparisonOperator: "GreaterThanThreshold",
      TreatMissingData: "breaching",
    });
    const custom = synth({ healthLatencyThresholdMs: "750" });
    custom.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      MetricName: "HealthCheckLatency",
      Threshold: 750,
    });
  });

  it("watches the metrics where -c metricsNamespace and serviceName make the functions emit them", () => {
    const custom = synth({
      metricsNamespace: "Chat/Staging",
      serviceName: "chat-staging",
      logLevel: "DEBUG",
    });
    custom.template.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: `${custom.stack.stackName}-events-consumer`,
      Environment: {
        Variables: Match.objectLike({
          POWERTOOLS_METRICS_NAMESPACE: "Chat/Staging",
          POWERTOOLS_SERVICE_NAME: "chat-staging",
          POWERTOOLS_LOG_LEVEL: "DEBUG",
        }),
      },
    });
    const own = Object.values(resourcesOf(custom.template, "AWS::CloudWatch::Alarm"))
      .map((a) => a.Properties ?? {})
      .filter((a) => a.Namespace !== undefined && !String(a.Namespace).startsWith("AWS/"));
    expect(own.map((a) => a.MetricName).sort()).toEqual(
      [
        "HealthCheckDegraded",
        "HealthCheckFailed",
        "HealthCheckLatency",
        "OutboxOldestPendingSeconds",
        "RejectedEvents",
      ].sort(),
    );
    for (const a of own) {
      expect(a.Namespace, String(a.MetricName)).toBe("Chat/Staging");
      expect(a.Dimensions, String(a.MetricName)).toEqual([{ Name: "service", Value: "chat-staging" }]);
    }
  });

  it("alarms on the errors of every function no client waits on (schedules and the consumer), the canary aside", () => {
    const background = functions.filter((f) => (f.schedule || f.kafkaTopic) && f.name !== HEALTH_CANARY);
    expect(background.map((f) => f.name).sort()).toEqual(["events-consumer", "maintenance", "outbox-relay"]);
    const [topicId] = Object.keys(resourcesOf(template, "AWS::SNS::Topic"));
    const errorAlarms = Object.values(resourcesOf(template, "AWS::CloudWatch::Alarm")).filter(
      (a) => a.Properties?.MetricName === "Errors",
    );
    expect(errorAlarms).toHaveLength(background.length);
    for (const spec of background)
      template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        Namespace: "AWS/Lambda",
        MetricName: "Errors",
        Statistic: "Sum",
        // two runs in a row: an hourly function's period is its hour (two 5-minute periods never both breach)
        Period: spec.schedule === "rate(1 hour)" ? 3600 : 300,
        EvaluationPeriods: 2,
        DatapointsToAlarm: 2,
        ComparisonOperator: "GreaterThanOrEqualToThreshold",
        Threshold: 1,
        Dimensions: [{ Name: "FunctionName", Value: { Ref: functionLogicalId(s, spec.name) } }],
        AlarmActions: [{ Ref: topicId }],
      });
    expect(functions.find((f) => f.name === "maintenance")?.schedule).toBe("rate(1 hour)");
  });

  /** The one alarm on this metric, which must notify the topic (and say so when it is OK again). */
  function alarmOn(metricName: string) {
    const [topicId] = Object.keys(resourcesOf(template, "AWS::SNS::Topic"));
    const found = Object.values(resourcesOf(template, "AWS::CloudWatch::Alarm")).filter(
      (a) => a.Properties?.MetricName === metricName,
    );
    expect(found, metricName).toHaveLength(1);
    const props = found[0]?.Properties ?? {};
    expect(props.AlarmActions, metricName).toEqual([{ Ref: topicId }]);
    expect(props.OKActions, metricName).toEqual([{ Ref: topicId }]);
    return props;
  }

  it("alarms on the HTTP API's 5xx answers on the $default stage", () => {
    const [apiId] = Object.keys(resourcesOf(template, "AWS::ApiGatewayV2::Api"));
    expect(alarmOn("5xx")).toMatchObject({
      Namespace: "AWS/ApiGateway",
      Dimensions: [
        { Name: "ApiId", Value: { Ref: apiId } },
        { Name: "Stage", Value: "$default" },
      ],
      Statistic: "Sum",
      Period: 300,
      EvaluationPeriods: 1,
      Threshold: 5,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      TreatMissingData: "notBreaching",
    });
  });

  it("alarms when events-consumer lags its topic for 15 minutes", () => {
    expect(alarmOn("OffsetLag")).toMatchObject({
      Namespace: "AWS/Lambda",
      Dimensions: [{ Name: "FunctionName", Value: { Ref: functionLogicalId(s, "events-consumer") } }],
      Statistic: "Maximum",
      Period: 300,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      Threshold: 1000,
      ComparisonOperator: "GreaterThanThreshold",
      TreatMissingData: "notBreaching",
    });
  });

  it("alarms on any record events-consumer rejects (RejectedEvents, as Powertools emits it)", () => {
    expect(alarmOn("RejectedEvents")).toMatchObject({
      Namespace: "ChatBackend",
      Dimensions: [{ Name: "service", Value: "chat-backend" }],
      Statistic: "Sum",
      Period: 300,
      EvaluationPeriods: 1,
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      TreatMissingData: "notBreaching",
    });
  });

  it("alarms when the outbox's oldest pending event is over 300 s old in two 5-minute periods in a row", () => {
    expect(alarmOn("OutboxOldestPendingSeconds")).toMatchObject({
      Namespace: "ChatBackend",
      Dimensions: [{ Name: "service", Value: "chat-backend" }],
      Statistic: "Maximum",
      Period: 300,
      EvaluationPeriods: 2,
      DatapointsToAlarm: 2,
      Threshold: 300,
      ComparisonOperator: "GreaterThanThreshold",
      // every relay run reports it: none for 10 minutes is a relay Lambda did not run (Errors counts no throttle)
      TreatMissingData: "breaching",
    });
  });

  it("does not take a relay that has no Kafka to publish to (so reports nothing) for a silent one", () => {
    const { template: noKafka } = synth({ ...EXTERNAL_CONTEXT, kafkaBrokers: "" });
    const alarm = Object.values(resourcesOf(noKafka, "AWS::CloudWatch::Alarm")).find(
      (a) => a.Properties?.MetricName === "OutboxOldestPendingSeconds",
    );
    expect(alarm?.Properties?.TreatMissingData).toBe("notBreaching");
    const { template: withKafka } = synth(EXTERNAL_CONTEXT);
    withKafka.hasResourceProperties("AWS::CloudWatch::Alarm", {
      MetricName: "OutboxOldestPendingSeconds",
      TreatMissingData: "breaching",
    });
  });

  it("takes the new alarms' thresholds from context", () => {
    const custom = synth({
      http5xxThreshold: "20",
      offsetLagThreshold: "5000",
      outboxPendingAgeThresholdSeconds: "900",
    });
    const thresholds = Object.fromEntries(
      Object.values(resourcesOf(custom.template, "AWS::CloudWatch::Alarm")).map((a) => [
        a.Properties?.MetricName,
        a.Properties?.Threshold,
      ]),
    );
    expect(thresholds).toMatchObject({ "5xx": 20, OffsetLag: 5000, OutboxOldestPendingSeconds: 900 });
  });

  it("subscribes alarmEmail and encrypts the topic", () => {
    template.hasResourceProperties("AWS::SNS::Subscription", {
      Protocol: "email",
      Endpoint: "oncall@example.com",
    });
    template.hasResourceProperties("AWS::SNS::Topic", { KmsMasterKeyId: Match.anyValue() });
  });

  it("lets CloudWatch use the topic's key (or no alarm reaches it) and takes TLS-only publishes", () => {
    const [keyId] = Object.keys(resourcesOf(template, "AWS::KMS::Key"));
    template.hasResourceProperties("AWS::SNS::Topic", { KmsMasterKeyId: arnOf(keyId ?? "") });
    template.hasResourceProperties("AWS::KMS::Key", {
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Allow",
            Principal: { Service: "cloudwatch.amazonaws.com" },
            Action: Match.arrayWith(["kms:Decrypt", "kms:GenerateDataKey*"]),
          }),
        ]),
      },
    });
    template.hasResourceProperties("AWS::SNS::TopicPolicy", {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Deny",
            Action: "sns:Publish",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        ]),
      },
    });
  });
});
