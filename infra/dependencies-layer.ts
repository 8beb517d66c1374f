import { AssetHashType, DockerImage, RemovalPolicy } from "aws-cdk-lib";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { Construct } from "constructs";
import { RUNTIME } from "./chat-function.ts";
import { closureHash, layerPackages, packageClosure, writeLayer } from "./layer-packages.ts";
import { REPO_ROOT } from "./paths.ts";

/**
 * The data layer's third-party packages (pg, ioredis, kafkajs, Powertools parameters, ...) as a Lambda layer under
 * nodejs/node_modules; zod and the Powertools logger and metrics are bundled into each function instead (INLINED
 * in layer-packages.ts). The function bundles mark exactly `packages` external, so the two always agree.
 * Built from the installed closure in node_modules (no Docker, no network): ioredis and pg as one esbuild bundle each
 * (PREBUNDLED), the rest copied; pure JS, so arm64-safe.
 */
export class DependenciesLayer extends Construct {
  readonly layer: lambda.LayerVersion;
  readonly packages: readonly string[];

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.packages = layerPackages(REPO_ROOT);
    const packages = this.packages;
    const closure = packageClosure(REPO_ROOT, packages);
    const code = lambda.Code.fromAsset(`${REPO_ROOT}/layers`, {
      // Hash of the closure's versions: code-only changes keep the same layer version.
      assetHash: closureHash(REPO_ROOT, closure),
      assetHashType: AssetHashType.CUSTOM,
      bundling: {
        // Required by the API, never pulled: local bundling always succeeds.
        image: DockerImage.fromRegistry("public.ecr.aws/sam/build-nodejs24.x"),
        local: {
          tryBundle(outputDir: string) {
            writeLayer(REPO_ROOT, packages, outputDir);
            return true;
          },
        },
      },
    });
    this.layer = new lambda.LayerVersion(this, "Layer", {
      code,
      compatibleRuntimes: [RUNTIME],
      compatibleArchitectures: [lambda.Architecture.ARM_64, lambda.Architecture.X86_64],
      description: `chat-backend dependencies: ${this.packages.join(", ")}`.slice(0, 256),
      removalPolicy: RemovalPolicy.DESTROY,
    });
  }
}
