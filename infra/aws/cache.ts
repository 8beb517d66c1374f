import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as elasticache from "aws-cdk-lib/aws-elasticache";
import { Construct } from "constructs";
import { physicalName } from "../names.ts";
import type { Network } from "./network.ts";

/** Serverless endpoint ports: 6379 read/write, 6380 reader endpoint. */
const CACHE_PORTS = ec2.Port.tcpRange(6379, 6380);

/** The usage limits: the most the cache may store and spend; its alarms (data-plane-alarms.ts) watch both. */
export const CACHE_MAX_DATA_GB = 5;
export const CACHE_MAX_ECPU_PER_SECOND = 15000;

/**
 * ElastiCache Serverless for Valkey: TLS-only, no nodes to size, and Valkey's minimum storage is 100 MB (Redis OSS
 * serverless bills 1 GB minimum). Usage limits cap the bill if a bug floods the cache.
 */
export class Cache extends Construct {
  readonly url: string;
  /** The serverless cache's name (its Ref): the `clusterId` dimension of its CloudWatch metrics. */
  readonly name: string;
  /** Admits the redis client group: a function may use that group only once this (and its rule) exists. */
  readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: { network: Network }) {
    super(scope, id);
    const { network } = props;
    const sg = new ec2.SecurityGroup(this, "CacheSg", {
      vpc: network.vpc,
      description: "valkey: 6379-6380 from the functions only",
      allowAllOutbound: false,
    });
    sg.connections.allowFrom(network.clients.redis, CACHE_PORTS, "functions to valkey");
    this.securityGroup = sg;
    const cache = new elasticache.CfnServerlessCache(this, "Cache", {
      serverlessCacheName: physicalName(this, 40),
      engine: "valkey",
      majorEngineVersion: "8",
      description: "chat-backend session/history cache",
      securityGroupIds: [sg.securityGroupId],
      subnetIds: network.vpc.selectSubnets(network.subnets).subnetIds,
      cacheUsageLimits: {
        dataStorage: { maximum: CACHE_MAX_DATA_GB, unit: "GB" },
        ecpuPerSecond: { maximum: CACHE_MAX_ECPU_PER_SECOND },
      },
    });
    this.name = cache.serverlessCacheRef.serverlessCacheName;
    this.url = `rediss://${cache.attrEndpointAddress}:${cache.attrEndpointPort}`;
  }
}
