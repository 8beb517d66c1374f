import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";
import { notifyingAlarm } from "../notifying-alarm.ts";
import { CACHE_MAX_DATA_GB, CACHE_MAX_ECPU_PER_SECOND } from "./cache.ts";
import { ALLOCATED_STORAGE_GIB, type Database, MAX_ALLOCATED_STORAGE_GIB } from "./database.ts";

const GIB = 1024 ** 3;
const FIVE_MINUTES = Duration.minutes(5);

/** Free storage that alarms: 10 % of the first allocation, where storage autoscaling starts growing the volume. */
export const DB_FREE_STORAGE_THRESHOLD_BYTES = (ALLOCATED_STORAGE_GIB / 10) * GIB;
/** CPU credits (one is a vCPU at 100 % for a minute) below which a burstable instance is short of CPU. */
export const DB_CPU_CREDIT_THRESHOLD = 20;
/** RDS Proxy's average wait for a database connection (µs) that means its pool is used up. */
export const PROXY_BORROW_LATENCY_THRESHOLD_US = 100_000;
/** 80 % of the cache's data storage limit, in bytes. */
export const CACHE_STORAGE_THRESHOLD_BYTES = CACHE_MAX_DATA_GB * 0.8 * 1e9;

export interface DataPlaneAlarmsProps {
  topic: sns.ITopic;
  database: Database;
  /** The instance type as given (`dbInstanceType`): only a burstable one has CPU credits. */
  dbInstanceType: string;
  /** The serverless cache's name, its metrics' `clusterId` dimension. */
  cacheName: string;
}

/**
 * Alarms on the `aws` data plane's managed resources, to the health alarms' topic: the database running out of
 * storage or CPU credits, RDS Proxy's pool used up, the cache throttled or nearly full. Each needs its condition
 * to last (15 minutes or more), so a burst does not page anyone. MSK Serverless has none: it has no brokers or
 * disks to watch, and the consumer's lag has its own alarm (OffsetLag).
 */
export class DataPlaneAlarms extends Construct {
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: DataPlaneAlarmsProps) {
    super(scope, id);
    const { topic, database } = props;
    const alarm = (alarmId: string, metric: cloudwatch.IMetric, options: cloudwatch.CreateAlarmOptions) =>
      this.alarms.push(notifyingAlarm(this, alarmId, topic, metric, options));
    const instance = database.instance;

    alarm(
      "DbFreeStorage",
      instance.metric("FreeStorageSpace", { statistic: "Minimum", period: FIVE_MINUTES }),
      {
        alarmDescription:
          `Postgres has had less than ${DB_FREE_STORAGE_THRESHOLD_BYTES / GIB} GiB free for 30 minutes: storage ` +
          `autoscaling (up to ${MAX_ALLOCATED_STORAGE_GIB} GiB, at most once in 6 hours) did not keep up`,
        threshold: DB_FREE_STORAGE_THRESHOLD_BYTES,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: 6,
        datapointsToAlarm: 6,
      },
    );

    // Hourly maxima, three in a row: a new instance starts with no credits and earns past the threshold within
    // its second hour, so only a balance that stays spent alarms.
    if (new ec2.InstanceType(props.dbInstanceType).isBurstable())
      alarm(
        "DbCpuCredits",
        instance.metric("CPUCreditBalance", { statistic: "Maximum", period: Duration.hours(1) }),
        {
          alarmDescription:
            `Postgres (${props.dbInstanceType}) has had fewer than ${DB_CPU_CREDIT_THRESHOLD} CPU credits for 3 ` +
            "hours: it runs above its baseline CPU (throttled to it, or billed for surplus credits); use a larger class",
          threshold: DB_CPU_CREDIT_THRESHOLD,
          comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
          evaluationPeriods: 3,
          datapointsToAlarm: 3,
        },
      );

    // Borrow latency is the proxy's queue: the time a client waits for a database connection. Reusing a pooled
    // one takes well under a millisecond and opening one tens; an average of 100 ms means clients wait for the
    // pool (90 % of max_connections), up to the 30 s borrow timeout.
    const borrowLatency = new cloudwatch.Metric({
      namespace: "AWS/RDS",
      metricName: "DatabaseConnectionsBorrowLatency",
      dimensionsMap: { ProxyName: database.proxy.dbProxyName },
      statistic: "Average",
      period: FIVE_MINUTES,
    });
    alarm("ProxyBorrowLatency", borrowLatency, {
      alarmDescription:
        `RDS Proxy took more than ${PROXY_BORROW_LATENCY_THRESHOLD_US / 1000} ms on average to hand out a database ` +
        "connection for 15 minutes: its connection pool is used up",
      threshold: PROXY_BORROW_LATENCY_THRESHOLD_US,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
    });

    // Serverless caches publish under `clusterId` (not CacheClusterId, the node-based caches' dimension).
    const cacheMetric = (metricName: string, statistic: string) =>
      new cloudwatch.Metric({
        namespace: "AWS/ElastiCache",
        metricName,
        dimensionsMap: { clusterId: props.cacheName },
        statistic,
        period: FIVE_MINUTES,
      });
    alarm("CacheThrottled", cacheMetric("ThrottledCmds", "Sum"), {
      alarmDescription:
        "Valkey throttled commands in three 5-minute periods in a row: the cache is at its " +
        `${CACHE_MAX_ECPU_PER_SECOND} ECPU/s limit (or load grows faster than it scales)`,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
    });
    alarm("CacheStorage", cacheMetric("BytesUsedForCache", "Maximum"), {
      alarmDescription:
        `Valkey has stored more than 80 % of its ${CACHE_MAX_DATA_GB} GB limit for 15 minutes: at the limit it ` +
        "evicts keys that have a TTL, then refuses writes",
      threshold: CACHE_STORAGE_THRESHOLD_BYTES,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
    });
  }
}
