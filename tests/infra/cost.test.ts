import { describe, expect, it } from "vitest";
import { resourcesOf, synth } from "./synth.ts";

/**
 * What the stack bills while idle, resource by resource (docs/deploy.md, Cost): nothing there that no caller uses.
 */

/** The AWS service each interface endpoint reaches ("secretsmanager", "kafka", …). */
function endpointServices(context: Record<string, unknown> = {}): string[] {
  return Object.values(resourcesOf(synth(context).template, "AWS::EC2::VPCEndpoint"))
    .map((e) => {
      const name = JSON.stringify(e.Properties?.ServiceName);
      // The agnostic name's Fn::Join, wherever it sits (under a region's condition for S3 and X-Ray).
      return /\.([a-z0-9-]+)"\]\]\}/.exec(name)?.[1] ?? name;
    })
    .sort();
}

describe("interface endpoints ($0.01 per AZ-hour each)", () => {
  it("are made only for the AWS APIs something in the VPC calls", () => {
    // Secrets Manager: the functions' and the rotations' secrets; kafka: GetBootstrapBrokers; s3: the pollers'
    // failed batches.
    expect(endpointServices()).toEqual(["kafka", "s3", "secretsmanager"]);
  });

  it("none for Lambda or STS: the MSK pollers run in provisioned mode, which needs neither", () => {
    const [mapping] = Object.values(resourcesOf(synth().template, "AWS::Lambda::EventSourceMapping"));
    expect(mapping?.Properties?.ProvisionedPollerConfig).toMatchObject({ MinimumPollers: 1 });
    expect(endpointServices()).not.toContain("lambda");
    expect(endpointServices()).not.toContain("sts");
  });

  it("bedrock-runtime and X-Ray only when they are turned on", () => {
    expect(endpointServices({ responder: "bedrock", tracing: "true" })).toEqual([
      "bedrock-runtime",
      "kafka",
      "s3",
      "secretsmanager",
      "xray",
    ]);
  });
});

describe("API Gateway's access log ($0.50 per GB, one line per request, the stage's own 429s included)", () => {
  // Each set by API Gateway within a size of its own; `$context.identity.userAgent` (like a path or a header) is
  // the client's, up to the 10,240 bytes of request line and headers an HTTP API takes.
  const BOUNDED = new Set([
    "$context.requestId",
    "$context.identity.sourceIp",
    "$context.requestTime",
    "$context.routeKey",
    "$context.status",
    "$context.protocol",
    "$context.responseLength",
    "$context.responseLatency",
    "$context.integrationLatency",
    "$context.integrationErrorMessage",
  ]);

  it("has only fields API Gateway bounds: a client cannot make its lines longer", () => {
    const [stage] = Object.values(resourcesOf(synth().template, "AWS::ApiGatewayV2::Stage"));
    const settings = stage?.Properties?.AccessLogSettings as { Format?: string } | undefined;
    const variables = Object.values(JSON.parse(settings?.Format ?? "{}") as Record<string, string>);
    expect(variables.length).toBeGreaterThan(5);
    for (const v of variables) expect(BOUNDED, v).toContain(v);
  });
});
