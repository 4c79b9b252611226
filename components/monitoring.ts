/**
 * Alerting for the EC2 target: one SNS topic (with an email subscription when `alertEmail` is set) and,
 * per node, CloudWatch alarms whose actions keep the same instance, IP and volume: EC2 auto-recovery on
 * a failed system status check, a reboot on a failed instance status check.
 */
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";

export interface NodeAlarmsArgs {
  region: string;
  alertEmail?: string;
  instances: { name: string; instanceId: pulumi.Input<string> }[];
  tags?: Record<string, string>;
}

export class NodeAlarms extends pulumi.ComponentResource {
  readonly topicArn: pulumi.Output<string>;

  constructor(name: string, args: NodeAlarmsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("redis-stack:monitoring:NodeAlarms", name, {}, opts);
    const topic = new aws.sns.Topic(
      `${name}-alerts`,
      { tags: { Name: `${name}-alerts`, ...args.tags } },
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
    this.topicArn = topic.arn;
    this.registerOutputs({ topicArn: this.topicArn });
  }
}
