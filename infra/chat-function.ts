import { join } from "node:path";
import { RemovalPolicy } from "aws-cdk-lib";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import type { LayerMode } from "./context.ts";
import { ExecutionRole } from "./execution-role.ts";
import { SDK_CLIENTS } from "./layer-packages.ts";
import { REPO_ROOT } from "./paths.ts";

export const RUNTIME = lambda.Runtime.NODEJS_24_X;

/** What every function of the app shares; built once by the stack. */
export interface ChatFunctionDefaults {
  layerMode: LayerMode;
  /** The dependencies layer (layer mode only) and the package names it provides. */
  layer?: lambda.ILayerVersion;
  layerPackages: readonly string[];
  logRetention: logs.RetentionDays;
  environment: Record<string, string>;
  /** Lambda's X-Ray tracing (context `tracing`); off by default. */
  tracing?: lambda.Tracing;
}

export interface ChatFunctionProps extends Omit<nodejs.NodejsFunctionProps, "runtime" | "architecture"> {
  entry: string;
  defaults: ChatFunctionDefaults;
}

/**
 * Bundling per layer mode.
 * - layer: CJS, so `require("pg")` finds /opt/nodejs/node_modules through NODE_PATH (ESM imports never look
 *   there). import.meta.url does not exist in CJS; a banner rebuilds it so migrate.ts can locate its folder.
 * - bundled: ESM with everything inlined; createRequire gives CJS dependencies a `require` for Node builtins.
 */
export function bundlingFor(mode: LayerMode, layerPackages: readonly string[]): nodejs.BundlingOptions {
  const common = {
    minify: true,
    sourceMap: true,
    sourcesContent: false,
    target: "node24",
    logLevel: nodejs.LogLevel.WARNING,
  };
  if (mode === "layer") {
    return {
      ...common,
      format: nodejs.OutputFormat.CJS,
      externalModules: [SDK_CLIENTS, ...layerPackages],
      banner: 'const __importMetaUrl=require("node:url").pathToFileURL(__filename).href;',
      define: { "import.meta.url": "__importMetaUrl" },
    };
  }
  return {
    ...common,
    format: nodejs.OutputFormat.ESM,
    mainFields: ["module", "main"],
    externalModules: [SDK_CLIENTS],
    banner: 'import{createRequire as __cr}from"node:module";const require=__cr(import.meta.url);',
  };
}

/**
 * The caller's hooks, then infra/source-map-paths.ts over the bundle: its source map names sources relative to the
 * repository, so the asset hash is the same wherever the app is checked out and synthesized. `inputDir` is the
 * repository (local bundling) or its mount in the bundling container, which runs a Node of its own.
 */
function withRepoRelativeSourceMaps(hooks: nodejs.ICommandHooks | undefined): nodejs.ICommandHooks {
  return {
    beforeBundling: (inputDir, outputDir) => hooks?.beforeBundling(inputDir, outputDir) ?? [],
    beforeInstall: (inputDir, outputDir) => hooks?.beforeInstall(inputDir, outputDir) ?? [],
    afterBundling: (inputDir, outputDir) => [
      ...(hooks?.afterBundling(inputDir, outputDir) ?? []),
      `"${inputDir === REPO_ROOT ? process.execPath : "node"}" "${inputDir}/infra/source-map-paths.ts" "${inputDir}" "${outputDir}"`,
    ],
  };
}

/**
 * A NodejsFunction with the app's defaults: Node 24 on arm64, its own log group and a role that writes only there,
 * Powertools env, the layer.
 */
export class ChatFunction extends nodejs.NodejsFunction {
  constructor(scope: Construct, id: string, props: ChatFunctionProps) {
    const { defaults, bundling, environment, layers, ...rest } = props;
    // A sibling so the group exists (with retention) before the function first logs.
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: defaults.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new ExecutionRole(scope, `${id}ServiceRole`, { logGroup, inVpc: !!rest.vpc });
    super(scope, id, {
      runtime: RUNTIME,
      role,
      architecture: lambda.Architecture.ARM_64,
      projectRoot: REPO_ROOT,
      depsLockFilePath: join(REPO_ROOT, "package-lock.json"),
      logGroup,
      ...(defaults.tracing ? { tracing: defaults.tracing } : {}),
      ...rest,
      layers: [...(defaults.layer ? [defaults.layer] : []), ...(layers ?? [])],
      environment: {
        NODE_OPTIONS: "--enable-source-maps",
        ...defaults.environment,
        ...environment,
      },
      bundling: {
        ...bundlingFor(defaults.layerMode, defaults.layerPackages),
        ...bundling,
        commandHooks: withRepoRelativeSourceMaps(bundling?.commandHooks),
      },
    });
    role.acknowledgeAnyResource([
      ...(rest.vpc
        ? [
            "Lambda's network interfaces in the VPC, the function's and a Kafka event source's pollers' (the EC2 actions of AWS's managed Lambda policies, inline and without their logs on *): EC2's Describe actions take no resource ARN and AWS documents the others on *.",
          ]
        : []),
      ...(defaults.tracing
        ? ["Added by active tracing: X-Ray's PutTraceSegments and PutTelemetryRecords take no resource ARN."]
        : []),
    ]);
  }
}
