import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as sns from "aws-cdk-lib/aws-sns";
import type { Construct } from "constructs";

/**
 * The stack's one kind of alarm: it notifies `topic` when it fires and again when it is OK, and missing data does
 * not alarm unless `options` say so. HealthAlarms, the data plane's alarms and the failed-batch alarm all use it.
 */
export function notifyingAlarm(
  scope: Construct,
  id: string,
  topic: sns.ITopic,
  metric: cloudwatch.IMetric,
  options: cloudwatch.CreateAlarmOptions,
): cloudwatch.Alarm {
  const alarm = new cloudwatch.Alarm(scope, id, {
    metric,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    ...options,
  });
  alarm.addAlarmAction(new actions.SnsAction(topic));
  alarm.addOkAction(new actions.SnsAction(topic));
  return alarm;
}
