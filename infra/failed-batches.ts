import { Aws, type CfnElement, Duration, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as sources from "aws-cdk-lib/aws-lambda-event-sources";
import * as s3 from "aws-cdk-lib/aws-s3";
import type * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";
import { configSchema } from "#chat/config.ts";
import { notifyingAlarm } from "./notifying-alarm.ts";

/** Retries of a failing batch before it goes to the bucket (Lambda allows up to 10,000; each retry is a failed run). */
export const FAILED_BATCH_RETRY_ATTEMPTS = 10;
/** The bucket's S3 request metrics filter (the whole bucket): the FilterId dimension of its PutRequests metric. */
export const FAILED_BATCH_METRICS_FILTER = "FailedBatches";
/** A Kafka event poller runs up to 5 invocations at once, and a partition has at most one in flight. */
const INVOCATIONS_PER_POLLER = 5;

type KafkaFailureOptions = Pick<
  sources.KafkaEventSourceProps,
  "onFailure" | "retryAttempts" | "bisectBatchOnError" | "provisionedPollerConfig"
>;

/**
 * Where a Kafka event source puts a batch its function keeps failing on, instead of retrying it until the topic
 * drops it: an S3 bucket. SQS and SNS would get only offsets; S3 gets the whole invocation (the records, in
 * `payload`) and, unlike a Kafka topic, is readable from outside the VPC, so an operator can replay a batch with
 * `aws lambda invoke` (docs/deploy.md). Encrypted, private, TLS only, versioned; objects expire when the consumer
 * forgets event ids (CONSUMED_EVENTS_RETENTION_HOURS), so a replay within that window applies each event exactly
 * once. Kept when the stack is deleted (it may hold the only copy of events the projection missed). Any object
 * arriving alarms.
 */
export class FailedBatches extends Construct implements lambda.IEventSourceDlq {
  readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    const keepDays = configSchema.parse({}).CONSUMED_EVENTS_RETENTION_HOURS / 24;
    this.bucket = new s3.Bucket(this, "Bucket", {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      versioned: true,
      lifecycleRules: [
        { expiration: Duration.days(keepDays), noncurrentVersionExpiration: Duration.days(1) },
      ],
      // Request metrics (PutRequests), for the alarm: S3's storage metrics come once a day.
      metrics: [{ id: FAILED_BATCH_METRICS_FILTER }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.bucket).acknowledge({
      id: "AwsSolutions-S1",
      reason:
        "Only the event source mapping writes here, with the consumer's role (PutObject, no read); every arrival alarms, and a log bucket would need its own.",
    });
  }

  /**
   * The Kafka event source's error handling: bisect a failing batch (so the valid records around a refused one
   * are applied), retry it FAILED_BATCH_RETRY_ATTEMPTS times, then send it here. Retries and bisection need
   * provisioned pollers; enough for one invocation per partition.
   */
  eventSourceOptions(partitions: number): KafkaFailureOptions {
    return {
      onFailure: this,
      retryAttempts: FAILED_BATCH_RETRY_ATTEMPTS,
      bisectBatchOnError: true,
      provisionedPollerConfig: {
        minimumPollers: 1,
        maximumPollers: Math.max(1, Math.ceil(partitions / INVOCATIONS_PER_POLLER)),
      },
    };
  }

  /**
   * What Lambda needs of the function's role (s3:PutObject and s3:ListBucket), on this bucket only and only while
   * it is this account's: a deleted bucket's name could be taken by another account. CDK's S3OnFailureDestination
   * would grant read, write and delete.
   */
  bind(_mapping: lambda.IEventSourceMapping, fn: lambda.IFunction): lambda.DlqDestinationConfig {
    const inThisAccount = { StringEquals: { "s3:ResourceAccount": Aws.ACCOUNT_ID } };
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ["s3:PutObject"],
        resources: [this.bucket.arnForObjects("*")],
        conditions: inThisAccount,
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ["s3:ListBucket"],
        resources: [this.bucket.bucketArn],
        conditions: inThisAccount,
      }),
    );
    const bucketId = Stack.of(this).getLogicalId(this.bucket.node.defaultChild as CfnElement);
    // On the role: the function's role is its sibling (infra/chat-function.ts).
    Validations.of(fn.role ?? fn).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/*]`,
      reason:
        "Lambda names the failed batches' objects itself (aws/lambda/<mapping id>/...); PutObject on this one bucket, no read.",
    });
    return { destination: this.bucket.bucketArn };
  }

  /** Any failed batch arriving (one is a batch that still failed after its retries): an alarm to `topic`. */
  alarmOnArrival(topic: sns.ITopic): cloudwatch.Alarm {
    const puts = new cloudwatch.Metric({
      namespace: "AWS/S3",
      metricName: "PutRequests",
      dimensionsMap: { BucketName: this.bucket.bucketName, FilterId: FAILED_BATCH_METRICS_FILTER },
      statistic: "Sum",
      period: Duration.minutes(5),
    });
    return notifyingAlarm(this, "Arrived", topic, puts, {
      alarmDescription:
        "A Kafka event source put a batch in its on-failure bucket: the function still failed on it after " +
        `${FAILED_BATCH_RETRY_ATTEMPTS} retries (Postgres refused a valid event). Fix the cause, then replay it ` +
        "(docs/deploy.md)",
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
  }
}
