import { Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import * as apigw from "aws-cdk-lib/aws-apigateway";
import * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import { HttpLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import {
  CORS_ALLOWED_HEADERS,
  CORS_ALLOWED_METHODS,
  CORS_EXPOSED_HEADERS,
  CORS_MAX_AGE_SECONDS,
} from "#functions/http/cors-headers.ts";
import type { HttpRoute } from "#functions/manifest.ts";

export interface ChatHttpApiProps {
  corsOrigins: string[];
  throttleRateLimit: number;
  throttleBurstLimit: number;
  logRetention: logs.RetentionDays;
}

// HTTP API context variables ($context.resourcePath/caller do not exist here, unlike REST APIs). Only fields API
// Gateway bounds: every request's line is billed by the byte, the stage's own 429s included, and a field the
// client sets (the user agent, a header) could make each one 10 KB.
const ACCESS_LOG_FORMAT = JSON.stringify({
  requestId: "$context.requestId",
  ip: "$context.identity.sourceIp",
  requestTime: "$context.requestTime",
  routeKey: "$context.routeKey",
  status: "$context.status",
  protocol: "$context.protocol",
  responseLength: "$context.responseLength",
  latencyMs: "$context.responseLatency",
  integrationLatencyMs: "$context.integrationLatency",
  integrationError: "$context.integrationErrorMessage",
});

/** HTTP API (payload 2.0) with one route per manifest route, stage throttling, CORS and JSON access logs. */
export class ChatHttpApi extends Construct {
  readonly api: apigwv2.HttpApi;
  readonly stage: apigwv2.HttpStage;

  constructor(scope: Construct, id: string, props: ChatHttpApiProps) {
    super(scope, id);
    this.api = new apigwv2.HttpApi(this, "Api", {
      description: "chat-backend",
      // The stage below carries throttling and access logs, which the implicit default stage cannot.
      createDefaultStage: false,
      corsPreflight: props.corsOrigins.length
        ? {
            allowOrigins: props.corsOrigins,
            // API Gateway answers CORS itself and drops the handlers' CORS headers: the same lists as theirs, and
            // the local runner's preflight answers.
            allowMethods: CORS_ALLOWED_METHODS.map((m) => apigwv2.CorsHttpMethod[m]),
            allowHeaders: CORS_ALLOWED_HEADERS,
            exposeHeaders: CORS_EXPOSED_HEADERS,
            maxAge: Duration.seconds(CORS_MAX_AGE_SECONDS),
          }
        : undefined,
    });
    const accessLogs = new logs.LogGroup(this, "AccessLogs", {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stage = this.api.addStage("DefaultStage", {
      stageName: "$default",
      autoDeploy: true,
      throttle: { rateLimit: props.throttleRateLimit, burstLimit: props.throttleBurstLimit },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogs),
        format: apigw.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
      },
    });
  }

  /** The API URL, ending in "/". */
  get url(): string {
    return this.stage.url;
  }

  addRoute(name: string, route: HttpRoute, fn: lambda.IFunction): void {
    const [routeConstruct] = this.api.addRoutes({
      path: route.path,
      methods: [apigwv2.HttpMethod[route.method]],
      integration: integration(name, fn),
    });
    if (routeConstruct)
      Validations.of(routeConstruct).acknowledge({
        id: "AwsSolutions-APIG4",
        reason:
          "Authorization is the per-session bearer token, verified in the handler against its stored hash; session creation, health and the OpenAPI document are public by design.",
      });
  }

  /** The `$default` route: every request no other route matches goes to fn (CORS preflights excepted). */
  addDefaultRoute(name: string, fn: lambda.IFunction): void {
    const route = new apigwv2.HttpRoute(this, `${name}Route`, {
      httpApi: this.api,
      routeKey: apigwv2.HttpRouteKey.DEFAULT,
      integration: integration(name, fn),
    });
    Validations.of(route).acknowledge({
      id: "AwsSolutions-APIG4",
      reason: "The $default route only answers 404 or 405; it reads and writes nothing.",
    });
  }
}

const integration = (name: string, fn: lambda.IFunction) =>
  new HttpLambdaIntegration(`${name}Integration`, fn, {
    payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
  });
