import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";

export interface HealthAlarmsProps {
  /** POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_SERVICE_NAME of the canary (Powertools' `service` dimension). */
  namespace: string;
  service: string;
  latencyThresholdMs: number;
  alarmEmail?: string;
}

/**
 * Alarms on the health canary's metrics (functions/health-canary.ts: HealthCheckFailed 0/1, HealthCheckLatency ms)
 * and on the errors of the functions no client waits on, to an SNS topic. The topic uses a customer-managed key because CloudWatch cannot publish with aws/sns.
 */
export class HealthAlarms extends Construct {
  readonly topic: sns.Topic;
  readonly failed: cloudwatch.Alarm;
  readonly slow: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: HealthAlarmsProps) {
    super(scope, id);
    const key = new kms.Key(this, "TopicKey", {
      enableKeyRotation: true,
      description: "chat-backend alarm topic",
    });
    key.grant(new iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*");
    this.topic = new sns.Topic(this, "Topic", {
      masterKey: key,
      enforceSSL: true,
      displayName: "chat-backend alarms",
    });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));

    const metric = (metricName: string, statistic: string) =>
      new cloudwatch.Metric({
        namespace: props.namespace,
        metricName,
        dimensionsMap: { service: props.service },
        statistic,
        period: Duration.minutes(5),
      });
    // Two failed checks in a row (10 minutes): one blip does not page anyone.
    this.failed = metric("HealthCheckFailed", "Sum").createAlarm(this, "Failed", {
      alarmDescription: "GET /health failed on two consecutive canary runs",
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    // Missing latency means the canary itself stopped reporting: that is treated as unhealthy too.
    this.slow = metric("HealthCheckLatency", "Maximum").createAlarm(this, "Slow", {
      alarmDescription: `GET /health slower than ${props.latencyThresholdMs} ms for 15 minutes, or no canary data`,
      threshold: props.latencyThresholdMs,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    for (const alarm of [this.failed, this.slow]) this.#notify(alarm);
  }

  /**
   * A function no client waits on (a schedule's or an event source's) failing in two 5-minute periods in a row:
   * the relay leaving events in the outbox, the consumer stuck on a batch, maintenance not pruning. /health does
   * not see these.
   */
  alarmOnErrors(id: string, fn: lambda.IFunction): cloudwatch.Alarm {
    const alarm = fn.metricErrors({ period: Duration.minutes(5), statistic: "Sum" }).createAlarm(this, id, {
      alarmDescription: `${fn.functionName} failed in two consecutive 5-minute periods`,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.#notify(alarm);
    return alarm;
  }

  #notify(alarm: cloudwatch.Alarm): void {
    alarm.addAlarmAction(new actions.SnsAction(this.topic));
    alarm.addOkAction(new actions.SnsAction(this.topic));
  }
}
