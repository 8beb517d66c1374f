import { Duration, RemovalPolicy } from "aws-cdk-lib";
import type * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import { notifyingAlarm } from "./notifying-alarm.ts";

/**
 * The longest period alarmOnErrors uses: a day, the one a daily schedule needs (two of them stay within the 7 days
 * CloudWatch lets an alarm look back over).
 */
const MAX_PERIOD_SECONDS = 86_400;

export interface HealthAlarmsProps {
  /** POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_SERVICE_NAME of the functions (Powertools' `service` dimension). */
  namespace: string;
  service: string;
  latencyThresholdMs: number;
  alarmEmail?: string;
}

/**
 * Alarms on the health canary's metrics (functions/health-canary.ts: HealthCheckFailed 0/1, HealthCheckLatency ms,
 * HealthCheckDegraded 0/1),
 * on the errors of the functions no client waits on, on the API's 5xx answers and on the event pipeline (consumer
 * lag, rejected events, the outbox's oldest unpublished event), to an SNS topic. The topic uses a customer-managed
 * key because CloudWatch cannot publish with aws/sns.
 */
export class HealthAlarms extends Construct {
  readonly topic: sns.Topic;
  readonly failed: cloudwatch.Alarm;
  readonly slow: cloudwatch.Alarm;
  readonly degraded: cloudwatch.Alarm;
  readonly #props: HealthAlarmsProps;

  constructor(scope: Construct, id: string, props: HealthAlarmsProps) {
    super(scope, id);
    this.#props = props;
    // It encrypts nothing stored (SNS keeps no messages): it goes with the stack, after KMS's shortest wait.
    const key = new kms.Key(this, "TopicKey", {
      enableKeyRotation: true,
      description: "chat-backend alarm topic",
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    key.grant(new iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*");
    this.topic = new sns.Topic(this, "Topic", {
      masterKey: key,
      enforceSSL: true,
      displayName: "chat-backend alarms",
    });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));

    // Two failed checks in a row (10 minutes): one blip does not page anyone.
    this.failed = this.#alarm("Failed", this.#serviceMetric("HealthCheckFailed", "Sum"), {
      alarmDescription: "GET /health failed on two consecutive canary runs",
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
    });
    // Missing latency means the canary itself stopped reporting: that is treated as unhealthy too.
    this.slow = this.#alarm("Slow", this.#serviceMetric("HealthCheckLatency", "Maximum"), {
      alarmDescription: `GET /health slower than ${props.latencyThresholdMs} ms for 15 minutes, or no canary data`,
      threshold: props.latencyThresholdMs,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    // /health answers 200 "degraded" while Redis or Kafka is down: the API still works (slower, events wait in the
    // outbox), so no client sees an error and the two alarms above stay quiet. Three runs in a row (15 minutes)
    // page someone; a failover's minute does not. No data is the Slow alarm's business.
    this.degraded = this.#alarm("Degraded", this.#serviceMetric("HealthCheckDegraded", "Sum"), {
      alarmDescription:
        "GET /health answered degraded (Redis or Kafka down) on three consecutive canary runs",
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
    });
  }

  /**
   * A function no client waits on (a schedule's or an event source's) failing in two periods in a row: the relay
   * leaving events in the outbox, the consumer stuck on a batch, maintenance not pruning. /health does not see
   * these. A period is 5 minutes, or the schedule's interval when longer: an hourly run fails at most once per
   * 5-minute period, and the period after it is empty, so two 5-minute periods in a row could never both breach.
   * A schedule whose interval is unknown (`cron(...)`, undefined) or over a day alarms on its first failed run
   * instead: two 5-minute periods in a row would never both hold one, and two periods of a week pass the 7 days.
   */
  alarmOnErrors(
    id: string,
    fn: lambda.IFunction,
    schedule?: { interval: Duration | undefined },
  ): cloudwatch.Alarm {
    const fiveMinutes = Duration.minutes(5);
    const interval = schedule?.interval;
    const twoInARow = !schedule || (interval !== undefined && interval.toSeconds() <= MAX_PERIOD_SECONDS);
    const period =
      twoInARow && interval && interval.toSeconds() > fiveMinutes.toSeconds() ? interval : fiveMinutes;
    const periods = twoInARow ? 2 : 1;
    return this.#alarm(id, fn.metricErrors({ period, statistic: "Sum" }), {
      alarmDescription: twoInARow
        ? `${fn.functionName} failed in two consecutive ${period.toHumanString()} periods`
        : `${fn.functionName} failed (a run of a schedule too long or irregular for two periods in a row)`,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: periods,
      datapointsToAlarm: periods,
    });
  }

  /**
   * API Gateway's 5xx answers on the stage: functions that failed, timed out or answered 503 (a backend down).
   * `threshold` in one 5-minute period, so a single timed-out request does not page anyone.
   */
  alarmOnServerErrors(stage: apigwv2.IHttpStage, threshold: number): cloudwatch.Alarm {
    return this.#alarm(
      "Http5xx",
      stage.metricServerError({ period: Duration.minutes(5), statistic: "Sum" }),
      {
        alarmDescription: `The HTTP API answered ${threshold} or more 5xx in 5 minutes`,
        threshold,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
      },
    );
  }

  /**
   * The consumer falling behind its topic: Lambda's OffsetLag of a Kafka event source (records between the topic's
   * end and what the function processed), above `threshold` for 15 minutes, so a burst the relay catches up on
   * does not page anyone. No data (no event source, or nothing new) is fine.
   */
  alarmOnOffsetLag(id: string, fn: lambda.IFunction, threshold: number): cloudwatch.Alarm {
    const lag = fn.metric("OffsetLag", { period: Duration.minutes(5), statistic: "Maximum" });
    return this.#alarm(id, lag, {
      alarmDescription: `${fn.functionName} more than ${threshold} records behind its topic for 15 minutes`,
      threshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
    });
  }

  /**
   * Records events-consumer skipped as not valid chat events (its RejectedEvents metric): retrying cannot fix them,
   * so the projection lost them. Any one is worth a look.
   */
  alarmOnRejectedEvents(): cloudwatch.Alarm {
    return this.#alarm("RejectedEvents", this.#serviceMetric("RejectedEvents", "Sum"), {
      alarmDescription: "events-consumer skipped records that are not valid chat events",
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
  }

  /**
   * The oldest event still unpublished after a relay run (outbox-relay's OutboxOldestPendingSeconds), older than
   * `thresholdSeconds` in two 5-minute periods in a row: events are reaching Kafka late, or not at all, even when
   * the relay itself does not fail. Where the relay publishes (`reports`), every run reports it, so none for two
   * periods is a relay that did not run: a tick Lambda throttled and dropped counts as no error.
   */
  alarmOnOutboxAge(thresholdSeconds: number, reports: boolean): cloudwatch.Alarm {
    return this.#alarm("OutboxOldestPending", this.#serviceMetric("OutboxOldestPendingSeconds", "Maximum"), {
      ...(reports ? { treatMissingData: cloudwatch.TreatMissingData.BREACHING } : {}),
      alarmDescription: `An outbox event has waited more than ${thresholdSeconds} s for Kafka in two consecutive 5-minute periods${reports ? ", or no relay run reported in them" : ""}`,
      threshold: thresholdSeconds,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
    });
  }

  /** A metric the functions emit with Powertools Metrics: their namespace, dimension `service`. */
  #serviceMetric(metricName: string, statistic: string): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: this.#props.namespace,
      metricName,
      dimensionsMap: { service: this.#props.service },
      statistic,
      period: Duration.minutes(5),
    });
  }

  /** An alarm that notifies the topic, and again when it is OK; missing data does not alarm unless said. */
  #alarm(id: string, metric: cloudwatch.IMetric, options: cloudwatch.CreateAlarmOptions): cloudwatch.Alarm {
    return notifyingAlarm(this, id, this.topic, metric, options);
  }
}
