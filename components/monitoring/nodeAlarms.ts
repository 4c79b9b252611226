/**
 * Alerting for the EC2 target: one SNS topic (with an email subscription when `alertEmail` is set) and,
 * per node, CloudWatch alarms whose actions keep the same instance, IP and volume: EC2 auto-recovery on
 * a failed system status check, a reboot on a failed instance status check. Given the nodes' metrics
 * (`metrics`), also one alarm per AlarmSpec (components/monitoring/alarms.ts) and the stack's dashboard
 * (components/monitoring/dashboard.ts).
 */
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { alarmSpecs, MonitoringInput } from "./alarms";
import { dashboardBody, dashboardName, dashboardUrl } from "./dashboard";
import { METRICS_NAMESPACE } from "./metrics";

export interface NodeAlarmsArgs {
  region: string;
  alertEmail?: string;
  /**
   * The KMS key that encrypts the alert topic; its policy must let CloudWatch use it (components/ec2/iam.ts
   * clusterKeyPolicy), or the topic drops every alarm's notification.
   */
  kmsKeyArn?: pulumi.Input<string>;
  instances: { name: string; instanceId: pulumi.Input<string> }[];
  /** What the nodes publish to CloudWatch: with it, the metric alarms and the dashboard exist. */
  metrics?: MonitoringInput;
  tags?: Record<string, string>;
}

export class NodeAlarms extends pulumi.ComponentResource {
  readonly topicArn: pulumi.Output<string>;
  /** The dashboard in the CloudWatch console (undefined without `metrics`). */
  readonly dashboardUrl: pulumi.Output<string | undefined>;

  constructor(name: string, args: NodeAlarmsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("redis-stack:monitoring:NodeAlarms", name, {}, opts);
    const topic = new aws.sns.Topic(
      `${name}-alerts`,
      {
        ...(args.kmsKeyArn !== undefined ? { kmsMasterKeyId: args.kmsKeyArn } : {}),
        tags: { Name: `${name}-alerts`, ...args.tags },
      },
      { parent: this },
    );
    if (args.alertEmail) {
      new aws.sns.TopicSubscription(
        `${name}-email`,
        { topic: topic.arn, protocol: "email", endpoint: args.alertEmail },
        { parent: this },
      );
    }
    for (const { name: node, instanceId } of args.instances) {
      const common = {
        namespace: "AWS/EC2",
        statistic: "Maximum",
        period: 60,
        evaluationPeriods: 2,
        threshold: 1,
        comparisonOperator: "GreaterThanOrEqualToThreshold",
        dimensions: { InstanceId: instanceId },
        okActions: [topic.arn],
        tags: { Name: `${name}-${node}`, ...args.tags },
      };
      new aws.cloudwatch.MetricAlarm(
        `${name}-${node}-recover`,
        {
          ...common,
          metricName: "StatusCheckFailed_System",
          alarmDescription: `${node}: host failure, EC2 recovers the instance (same IP and volume)`,
          alarmActions: [`arn:aws:automate:${args.region}:ec2:recover`, topic.arn],
        },
        { parent: this },
      );
      new aws.cloudwatch.MetricAlarm(
        `${name}-${node}-reboot`,
        {
          ...common,
          evaluationPeriods: 3,
          metricName: "StatusCheckFailed_Instance",
          alarmDescription: `${node}: instance unreachable, rebooted`,
          alarmActions: [`arn:aws:automate:${args.region}:ec2:reboot`, topic.arn],
        },
        { parent: this },
      );
    }
    this.dashboardUrl = args.metrics
      ? this.metricAlarms(name, args.region, args.metrics, topic.arn, args.tags)
      : pulumi.output(undefined);
    this.topicArn = topic.arn;
    this.registerOutputs({ topicArn: this.topicArn, dashboardUrl: this.dashboardUrl });
  }

  /** One alarm per AlarmSpec on the nodes' metrics, and the dashboard; returns the dashboard's URL. */
  private metricAlarms(
    name: string,
    region: string,
    metrics: MonitoringInput,
    topicArn: pulumi.Output<string>,
    tags?: Record<string, string>,
  ): pulumi.Output<string> {
    for (const spec of alarmSpecs(metrics)) {
      new aws.cloudwatch.MetricAlarm(
        `${name}-${spec.id}`,
        {
          namespace: METRICS_NAMESPACE,
          metricName: spec.metricName,
          dimensions: spec.dimensions,
          statistic: spec.statistic,
          period: spec.periodSeconds,
          evaluationPeriods: spec.evaluationPeriods,
          datapointsToAlarm: spec.datapointsToAlarm,
          threshold: spec.threshold,
          comparisonOperator: spec.comparison,
          treatMissingData: spec.treatMissingData,
          alarmDescription: spec.description,
          // A notice has nothing to resolve: no "OK" message follows it.
          alarmActions: [topicArn],
          okActions: spec.severity === "page" ? [topicArn] : [],
          tags: { Name: `${name}-${spec.id}`, "redis-stack:severity": spec.severity, ...tags },
        },
        { parent: this },
      );
    }
    const dashboard = new aws.cloudwatch.Dashboard(
      `${name}-dashboard`,
      {
        dashboardName: dashboardName(metrics.stackDimension),
        dashboardBody: JSON.stringify(dashboardBody({ ...metrics, region })),
      },
      { parent: this },
    );
    return dashboard.dashboardName.apply((n) => dashboardUrl(region, n));
  }
}
