import { Aws, Validations } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";

/** Prefixes of Bedrock's cross-Region (system-defined) inference profiles: `<prefix>.<foundation model id>`. */
const PROFILE_PREFIXES = new Set(["global", "us", "eu", "apac", "jp", "au", "ca", "us-gov"]);

/** The foundation model behind a model id, and the inference profile it names, if it names one. */
export function parseModelId(modelId: string): { foundationModel: string; inferenceProfile?: string } {
  const dot = modelId.indexOf(".");
  const prefix = modelId.slice(0, dot);
  if (dot > 0 && PROFILE_PREFIXES.has(prefix) && modelId.indexOf(".", dot + 1) > 0)
    return { foundationModel: modelId.slice(dot + 1), inferenceProfile: modelId };
  return { foundationModel: modelId };
}

/**
 * `bedrock:InvokeModel` (which Converse requires) on exactly what invoking `modelId` touches.
 * - A foundation model id: that model in the stack's region.
 * - An inference profile id (`us.…`, `global.…`): the profile in the stack's region, and its foundation model in
 *   whichever region the profile routes the request to (any of the geography's, or a region-less ARN for a global
 *   profile). That list changes as AWS adds regions, so the model is granted in every region but only through this
 *   profile (`bedrock:InferenceProfileArn`), never directly.
 */
function bedrockInvokeStatements(modelId: string): iam.PolicyStatement[] {
  const { foundationModel, inferenceProfile } = parseModelId(modelId);
  const modelArn = (region: string) =>
    `arn:${Aws.PARTITION}:bedrock:${region}::foundation-model/${foundationModel}`;
  if (!inferenceProfile)
    return [new iam.PolicyStatement({ actions: ["bedrock:InvokeModel"], resources: [modelArn(Aws.REGION)] })];
  const profileArn = `arn:${Aws.PARTITION}:bedrock:${Aws.REGION}:${Aws.ACCOUNT_ID}:inference-profile/${inferenceProfile}`;
  return [
    new iam.PolicyStatement({ actions: ["bedrock:InvokeModel"], resources: [profileArn] }),
    new iam.PolicyStatement({
      actions: ["bedrock:InvokeModel"],
      resources: [modelArn("*"), modelArn("")],
      conditions: { StringEquals: { "bedrock:InferenceProfileArn": profileArn } },
    }),
  ];
}

/** Lets `fn` invoke `modelId` (a foundation model or an inference profile). */
export function grantBedrockInvoke(fn: lambda.Function, modelId: string): void {
  for (const statement of bedrockInvokeStatements(modelId)) fn.addToRolePolicy(statement);
  const { foundationModel, inferenceProfile } = parseModelId(modelId);
  if (inferenceProfile)
    Validations.of(fn.role ?? fn).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/${foundationModel}]`,
      reason:
        "An inference profile routes to its model in any of its destination regions; the statement's bedrock:InferenceProfileArn condition allows the model only through this one profile.",
    });
}
