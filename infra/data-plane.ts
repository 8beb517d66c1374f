import type * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import { Construct, type IDependable } from "constructs";
import { AwsDataPlane } from "./aws/aws-data-plane.ts";
import type { ChatContext } from "./context.ts";
import { ExternalDataPlane } from "./external-data-plane.ts";

/** Where a data-plane client runs: VPC placement, or nothing (external endpoints are reached directly). */
export interface Placement {
  vpc?: ec2.IVpc;
  vpcSubnets?: ec2.SubnetSelection;
  securityGroups?: ec2.ISecurityGroup[];
}

/** What the stack needs from either variant. */
export interface DataPlaneVariant {
  /** Env vars (names from layers/chat/config.ts) for every data-plane client. Never a password. */
  readonly environment: Record<string, string>;
  readonly placement: Placement;
  /** Resources the deploy-time migration must wait for (e.g. the proxy's target registration). */
  readonly dependables: IDependable[];
  grantClient(fn: lambda.Function): void;
  grantMigrator(fn: lambda.Function): void;
  /** The event source mapping for a kafkaTopic function, or undefined when this variant has none. */
  addConsumer(fn: lambda.Function, topic: string, group: string): lambda.EventSourceMapping | undefined;
}

export interface DataPlaneProps {
  ctx: ChatContext;
  topic: string;
}

/**
 * Postgres, Redis and Kafka for the functions, chosen by context `dataPlane`:
 * `aws` builds VPC + RDS/Proxy + ElastiCache Serverless + MSK Serverless; `external` wires given endpoints
 * (LocalStack with the compose services, or bring-your-own).
 */
export class DataPlane extends Construct implements DataPlaneVariant {
  readonly variant: DataPlaneVariant;

  constructor(scope: Construct, id: string, props: DataPlaneProps) {
    super(scope, id);
    const { ctx, topic } = props;
    if (ctx.dataPlane === "aws") this.variant = new AwsDataPlane(this, "Aws", { ctx, topic });
    else {
      if (!ctx.external) throw new Error("dataPlane=external needs its endpoints in context");
      this.variant = new ExternalDataPlane(this, "External", { endpoints: ctx.external, topic });
    }
  }

  get environment() {
    return this.variant.environment;
  }
  get placement() {
    return this.variant.placement;
  }
  get dependables() {
    return this.variant.dependables;
  }
  grantClient(fn: lambda.Function) {
    this.variant.grantClient(fn);
  }
  grantMigrator(fn: lambda.Function) {
    this.variant.grantMigrator(fn);
  }
  addConsumer(fn: lambda.Function, topic: string, group: string) {
    return this.variant.addConsumer(fn, topic, group);
  }
}
