/**
 * The checked-in `prod` stack (EC2 cluster, 3 shards x 1 replica, TLS) under Pulumi mocks:
 * what `pulumi up` would create, how it is secured, and what it exports.
 */
import * as fs from "fs";
import * as path from "path";
import { LIVE_DIRECTIVES } from "../../components/ec2/desired";
import * as pulumi from "@pulumi/pulumi";
import {
  byType,
  countByType,
  FAKE,
  Registered,
  runStack,
  RunResult,
  unwrapSecrets,
  valueOf,
} from "./support/stackHarness";
import { planTopology } from "../../components/ec2/topology";
import { RETAINED_VOLUME_TAGS } from "../../components/ec2/backups";
import { alarmSpecs } from "../../components/monitoring/alarms";
import { DEFAULT_ALARM_THRESHOLDS } from "../../components/config/settings";
import { METRIC_NAMES, METRICS_NAMESPACE } from "../../components/monitoring/metrics";
import { CLUSTER_BUS_OFFSET, EXPORTER_PORT, REDIS_PORT } from "../../components/ec2/node/redisConf";

/** Node names in plan order: masters first, then replicas. */
const NAMES = planTopology(3, 1, 3).map((n) => n.name);
import {
  decodeUserData,
  ssmNames,
  ssmShippedScripts,
  SSM_STANDARD_VALUE_MAX,
  USER_DATA_LIMIT_BYTES,
} from "../../components/ec2/node/userData";

let run: RunResult;
const inputs = (r: Registered) => unwrapSecrets(r.inputs) as Record<string, unknown>;
const one = (type: string, nameSuffix: string) => {
  const found = run.resources.filter((r) => r.type === type && r.name.endsWith(nameSuffix));
  expect(found).toHaveLength(1);
  return inputs(found[0]);
};
const instances = () => byType(run.resources, "aws:ec2/instance:Instance").map(inputs);
const userDataOf = (node: string) =>
  decodeUserData(String(one("aws:ec2/instance:Instance", `-${node}`).userDataBase64));

beforeAll(async () => {
  run = await runStack("prod");
  if (run.error) throw run.error;
});

describe("prod stack resource graph", () => {
  test("creates one cluster of 6 nodes with their network, secrets and alarms", () => {
    const counts = countByType(run.resources);
    expect(counts).toMatchObject({
      "redis-stack:ec2:RedisCluster": 1,
      "redis-stack:network:RedisVpc": 1,
      "aws:ec2/vpc:Vpc": 1,
      "aws:ec2/subnet:Subnet": 6,
      "aws:ec2/natGateway:NatGateway": 1,
      "aws:ec2/securityGroup:SecurityGroup": 2,
      "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": 2,
      "aws:ec2/networkInterface:NetworkInterface": 6,
      "aws:ebs/volume:Volume": 6,
      "aws:ec2/volumeAttachment:VolumeAttachment": 6,
      "aws:ec2/instance:Instance": 6,
      "random:index/randomPassword:RandomPassword": 4,
      // passwords (app, admin, replication, monitor), CA, per-node key + certificate, desired settings, shipped scripts
      "aws:ssm/parameter:Parameter":
        4 + 1 + 6 * 2 + 1 + ssmShippedScripts(ssmNames("redis-stack", "prod")).flatMap((sc) => sc.chunks).length,
      "pulumi:pulumi:StackReference": 1,
      "tls:index/selfSignedCert:SelfSignedCert": 1,
      "tls:index/locallySignedCert:LocallySignedCert": 6,
      "tls:index/privateKey:PrivateKey": 7,
      "aws:iam/role:Role": 1,
      "aws:iam/instanceProfile:InstanceProfile": 1,
      "aws:iam/rolePolicy:RolePolicy": 1,
      "aws:sns/topic:Topic": 1,
      "aws:sns/topicSubscription:TopicSubscription": 1,
      // per node: recover + reboot (EC2 status checks) and silent; 13 stack-wide on the nodes' metrics;
      // per shard: its backups stale
      "aws:cloudwatch/metricAlarm:MetricAlarm": 6 * 3 + 13 + 3,
      "aws:cloudwatch/dashboard:Dashboard": 1,
    });
    expect(counts["rediscloud:index/subscription:Subscription"]).toBeUndefined();
  });

  test("every master's replica sits in another availability zone, at a fixed address in its AZ's subnet", () => {
    const enis = byType(run.resources, "aws:ec2/networkInterface:NetworkInterface").map(inputs);
    const subnets = byType(run.resources, "aws:ec2/subnet:Subnet").map(inputs);
    const subnetAz = new Map(
      subnets.map((s) => [
        `${String(s.tags && (s.tags as Record<string, string>).Name)}-id`,
        String(s.availabilityZone),
      ]),
    );
    const azOfNode = new Map<string, string>();
    for (const e of enis) {
      const node = String(e.description).split(" ")[0];
      azOfNode.set(node, subnetAz.get(String(e.subnetId)) ?? "?");
      expect(e.privateIps).toHaveLength(1);
    }
    expect([...azOfNode.values()].sort()).toEqual([
      "us-east-1a",
      "us-east-1a",
      "us-east-1b",
      "us-east-1b",
      "us-east-1c",
      "us-east-1c",
    ]);
    for (const n of planTopology(3, 1, 3).filter((p) => p.role === "replica")) {
      expect(azOfNode.get(n.name)).not.toEqual(azOfNode.get(NAMES[n.masterIndex ?? -1]));
    }
    // Data volumes live in their node's AZ.
    for (const v of byType(run.resources, "aws:ebs/volume:Volume").map(inputs)) {
      const node = String(v.tags && (v.tags as Record<string, string>).Name)
        .replace(/^redis-prod-/, "")
        .replace(/-data$/, "");
      expect(v.availabilityZone).toEqual(azOfNode.get(node));
      // Left behind when its node goes (retainOnDelete), and findable then: docs/runbook.md lists them by these tags.
      expect(v.tags).toMatchObject({ "redis-stack:stack": "redis-stack/prod", "redis-stack:node": node });
    }
    const runbook = fs.readFileSync(path.resolve(__dirname, "../../docs/runbook.md"), "utf8");
    expect(runbook).toContain(`Name=tag:${RETAINED_VOLUME_TAGS.stack},Values=<project>/<stack>`);
    expect(runbook).toContain(`Key==\`${RETAINED_VOLUME_TAGS.node}\``);
  });

  test("instances: IMDSv2 only, no public IP, encrypted root and data volumes, fixed ENI, role for SSM", () => {
    for (const i of instances()) {
      expect(i.metadataOptions).toMatchObject({ httpTokens: "required", httpEndpoint: "enabled" });
      expect(i.associatePublicIpAddress).toBeUndefined();
      expect(i.rootBlockDevice).toMatchObject({ encrypted: true });
      expect((i.primaryNetworkInterface as { networkInterfaceId: string }).networkInterfaceId).toMatch(/-id$/);
      expect(i.instanceType).toBe("r7g.large");
      expect(i.ami).toBe("ami-0debian12");
      expect(i.keyName).toBeUndefined();
    }
    for (const v of byType(run.resources, "aws:ebs/volume:Volume").map(inputs))
      expect(v).toMatchObject({ encrypted: true, type: "gp3", size: 32 }); // 3 x maxmemory (10.4 GiB)
    expect(run.calls).toContain("aws:ec2/getAmi:getAmi");
  });

  test("the cluster's KMS key: rotated, kept, and encrypting every secret, volume, backup and alert", () => {
    const keys = byType(run.resources, "aws:kms/key:Key");
    expect(keys).toHaveLength(1);
    const key = inputs(keys[0]);
    expect(key.enableKeyRotation).toBe(true);
    const secret = byType(run.resources, "aws:ssm/parameter:Parameter")
      .map(inputs)
      .filter((p) => p.type === "SecureString");
    // The mocks give the one key this ARN; every use below must name it.
    const arn = String(secret[0]?.keyId);
    expect(arn).toMatch(/^arn:aws:kms:us-east-1:123456789012:key\/[0-9a-f-]{36}$/);
    expect(secret.length).toBe(4 + NAMES.length);
    for (const p of secret) expect(p.keyId).toBe(arn);
    for (const v of byType(run.resources, "aws:ebs/volume:Volume").map(inputs)) expect(v.kmsKeyId).toBe(arn);
    for (const i of instances()) expect(i.rootBlockDevice).toMatchObject({ encrypted: true, kmsKeyId: arn });
    expect(
      one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "-backups"),
    ).toMatchObject({
      rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: arn } }],
    });
    expect(one("aws:sns/topic:Topic", "-alerts").kmsMasterKeyId).toBe(arn);
    // The key policy: the account through IAM (who may use it is the IAM policies' say), and CloudWatch for the
    // encrypted alert topic (without it the topic drops every alarm's notification).
    const policy = JSON.parse(String(key.policy)) as {
      Statement: Array<{ Sid: string; Principal: Record<string, string>; Action: string[]; Condition?: unknown }>;
    };
    expect(policy.Statement.map((st) => [st.Sid, st.Principal])).toEqual([
      ["AccountAdministersThroughIam", { AWS: "arn:aws:iam::123456789012:root" }],
      ["CloudWatchAlarmsPublishToTheAlertTopic", { Service: "cloudwatch.amazonaws.com" }],
    ]);
    expect(policy.Statement[1]).toMatchObject({
      Action: ["kms:Decrypt", "kms:GenerateDataKey*"],
      Condition: { StringEquals: { "aws:SourceAccount": "123456789012" } },
    });
    // The node role decrypts with it through SSM for this stack's parameters, and through S3 for its backups.
    const role = JSON.parse(String(one("aws:iam/rolePolicy:RolePolicy", "-node").policy)) as {
      Statement: Array<{ Sid: string; Action: string[]; Resource: string; Condition?: Record<string, unknown> }>;
    };
    const onKey = role.Statement.filter((st) => st.Action.some((a) => a.startsWith("kms:")));
    expect(onKey.map((st) => [st.Sid, st.Resource, st.Condition])).toEqual([
      [
        "DecryptThisStacksSecretsViaSsm",
        arn,
        {
          StringEquals: { "kms:ViaService": "ssm.us-east-1.amazonaws.com" },
          StringLike: {
            "kms:EncryptionContext:PARAMETER_ARN": "arn:aws:ssm:us-east-1:123456789012:parameter/redis-stack/prod/*",
          },
        },
      ],
      ["BackupKeyViaS3", arn, { StringEquals: { "kms:ViaService": "s3.us-east-1.amazonaws.com" } }],
    ]);
  });

  test("security groups: 6379 and the exporter's 9121 from nodes, the client SG and allowedCidrs; the bus only between nodes; never 0.0.0.0/0 in", () => {
    const sgs = byType(run.resources, "aws:ec2/securityGroup:SecurityGroup").map(inputs);
    const nodes = sgs.find((s) => String(s.description).startsWith("Redis Cluster nodes"));
    const client = sgs.find((s) => String(s.description).startsWith("Attach to apps"));
    expect(nodes).toBeDefined();
    expect(client).toBeDefined();
    const ingress = (nodes?.ingress ?? []) as Array<Record<string, unknown>>;
    expect(ingress).toHaveLength(7);
    for (const rule of ingress) {
      expect(rule.protocol).toBe("tcp");
      expect([REDIS_PORT, REDIS_PORT + CLUSTER_BUS_OFFSET, EXPORTER_PORT]).toContain(rule.fromPort);
      expect(rule.toPort).toBe(rule.fromPort);
      expect(rule.cidrBlocks ?? []).not.toContain("0.0.0.0/0");
    }
    const bus = ingress.filter((r) => r.fromPort === 16379);
    expect(bus).toEqual([expect.objectContaining({ self: true })]);
    // Redis and the Prometheus exporter: each from exactly the nodes, the client group and allowedCidrs.
    for (const port of [6379, 9121]) {
      const sources = ingress
        .filter((r) => r.fromPort === port)
        .map((r) => ({ self: r.self, securityGroups: r.securityGroups, cidrBlocks: r.cidrBlocks }));
      expect(sources).toEqual([
        { self: true, securityGroups: undefined, cidrBlocks: undefined },
        { self: undefined, securityGroups: ["redis-prod-client-id"], cidrBlocks: undefined },
        { self: undefined, securityGroups: undefined, cidrBlocks: ["10.0.0.0/16"] },
      ]);
    }
    expect(client?.ingress ?? []).toEqual([]);
    // A Pulumi-managed group has no default egress: the client group gets exactly 6379 and 9121 to the nodes.
    expect(client?.egress).toBeUndefined();
    const egress = byType(run.resources, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule").map(inputs);
    expect(egress).toEqual(
      [6379, 9121].map((port): unknown =>
        expect.objectContaining({
          securityGroupId: "redis-prod-client-id",
          referencedSecurityGroupId: "redis-prod-nodes-id",
          ipProtocol: "tcp",
          fromPort: port,
          toPort: port,
        }),
      ),
    );
    for (const rule of egress) expect(rule.cidrIpv4).toBeUndefined();
  });

  test("passwords and TLS keys are SSM SecureStrings, and the role reads only this stack's parameters", () => {
    const params = byType(run.resources, "aws:ssm/parameter:Parameter");
    const secret = params.filter((p) => p.inputs.type === "SecureString");
    for (const p of secret) {
      // The value reaches the engine as a secret.
      expect(p.inputs.value).toMatchObject({ [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig });
    }
    expect(secret.map((p) => inputs(p).name).sort()).toEqual(
      [
        "/redis-stack/prod/admin-password",
        "/redis-stack/prod/app-password",
        "/redis-stack/prod/monitor-password",
        "/redis-stack/prod/replication-password",
        ...NAMES.map((n) => `/redis-stack/prod/tls/${n}.key`),
      ].sort(),
    );
    // Certificates are public: plain String parameters, so renewals reach nodes at their next boot.
    const isScript = (p: Record<string, unknown>) => String(p.name).startsWith("/redis-stack/prod/scripts/");
    const plain = params
      .filter((p) => p.inputs.type === "String")
      .map(inputs)
      .filter((p) => p.name !== "/redis-stack/prod/settings" && !isScript(p));
    expect(plain.map((p) => p.name).sort()).toEqual(
      ["/redis-stack/prod/tls/ca.crt", ...NAMES.map((n) => `/redis-stack/prod/tls/${n}.crt`)].sort(),
    );
    for (const p of plain) expect(String(p.value)).toMatch(/^-----BEGIN CERTIFICATE-----/);
    // The scripts too big for the user-data: plain Standard-tier parameters within that tier's 4 KB.
    const shipped = params.map(inputs).filter(isScript);
    expect(shipped.map((p) => p.name)).toEqual(
      ssmShippedScripts(ssmNames("redis-stack", "prod")).flatMap((sc) => sc.chunks.map((k) => k.parameter)),
    );
    for (const p of shipped) {
      expect(p).toMatchObject({ type: "String", tier: "Standard" });
      expect(String(p.value).length).toBeLessThanOrEqual(SSM_STANDARD_VALUE_MAX);
    }
    const policy = JSON.parse(String(one("aws:iam/rolePolicy:RolePolicy", "-node").policy)) as {
      Statement: Array<{ Sid: string; Effect: string; Action: string[]; Resource: string }>;
    };
    expect(policy.Statement.find((st) => st.Sid === "ReadThisStacksParameters")).toEqual({
      Sid: "ReadThisStacksParameters",
      Effect: "Allow",
      Action: ["ssm:GetParameter", "ssm:GetParameters"],
      Resource: "arn:aws:ssm:us-east-1:123456789012:parameter/redis-stack/prod/*",
    });
    // No statement lets a node read (or write) parameters beyond this stack's path.
    for (const st of policy.Statement) {
      const touchesParameters = st.Action.some((a) => /^ssm:(Get|Put|Delete)Parameter|^ssm:\*$|^\*$/.test(a));
      if (touchesParameters) expect(st.Resource).toMatch(/:parameter\/redis-stack\/prod\/(status\/)?\*$/);
    }
    // Writes only to the status path, where nodes publish their state.
    expect(policy.Statement.find((st) => st.Action.includes("ssm:PutParameter"))).toEqual({
      Sid: "PublishNodeStatus",
      Effect: "Allow",
      Action: ["ssm:PutParameter"],
      Resource: "arn:aws:ssm:us-east-1:123456789012:parameter/redis-stack/prod/status/*",
    });
    // No AWS-managed policy: AmazonSSMManagedInstanceCore alone grants ssm:GetParameter(s) on "*".
    expect(byType(run.resources, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")).toEqual([]);
    expect(byType(run.resources, "aws:iam/rolePolicy:RolePolicy")).toHaveLength(1);
  });

  test("the desired-settings parameter carries every live setting, the plan and the roll generation (plain, no secret)", () => {
    const p = one("aws:ssm/parameter:Parameter", "-settings");
    expect(p.name).toBe("/redis-stack/prod/settings");
    expect(p.type).toBe("String");
    const text = String(p.value);
    const lines = text.split("\n");
    expect(lines[0]).toMatch(/^version [0-9a-f]{12}$/);
    expect(lines).toContain("generation 0");
    // Every live directive, with the stack's values: changing any of them changes this parameter only.
    expect(lines.filter((l) => l.startsWith("set ")).sort()).toEqual(
      [
        "set cluster-node-timeout 2000",
        "set appendonly yes",
        "set save 900 1 300 10 60 10000",
        "set maxmemory 11166285824",
        "set maxmemory-policy allkeys-lru",
      ].sort(),
    );
    expect(lines.filter((l) => l.startsWith("set ")).map((l) => l.split(" ")[1])).toEqual([...LIVE_DIRECTIVES]);
    expect(lines.filter((l) => l.startsWith("node ")).map((l) => l.split(" ")[1])).toEqual(NAMES);
    expect(text).not.toContain(FAKE.password("redis-prod-admin-password"));
  });

  test("each node's user-data carries its cluster role, TLS and starting settings, and no secret; later settings come from the parameter", () => {
    const secrets = [
      FAKE.password("redis-prod-app-password"),
      FAKE.password("redis-prod-admin-password"),
      FAKE.password("redis-prod-monitor-password"),
      "KEYredis-prod",
    ];
    for (let i = 0; i < 6; i++) {
      const ud = userDataOf(NAMES[i]);
      expect(ud.startsWith("#!/bin/bash\n")).toBe(true);
      expect(ud).toContain("set -euo pipefail");
      expect(ud).toContain(`NODE_NAME='${NAMES[i]}'`);
      for (const line of [
        "cluster-enabled yes",
        "appendfsync everysec",
        "include /etc/redis-stack/settings.conf",
        "SSM_SETTINGS='/redis-stack/prod/settings'",
        "tls-port 6379",
        "tls-cluster yes",
        "tls-replication yes",
        "port 0",
      ]) {
        expect(ud).toContain(line);
      }
      // The values the node is created with are in its user-data (the design card's "cluster + maxmemory in
      // user-data"), before the settings file, which the stack's later changes rewrite and which decides.
      for (const line of [
        "maxmemory 11166285824",
        "maxmemory-policy allkeys-lru",
        "appendonly yes",
        "cluster-node-timeout 2000",
        "cluster-enabled yes",
      ])
        expect(ud).toMatch(new RegExp(`^${line}$`, "m"));
      const settingsAt = ud.indexOf("include /etc/redis-stack/settings.conf");
      for (const d of LIVE_DIRECTIVES) {
        const at = ud.search(new RegExp(`^${d} `, "m"));
        expect(at).toBeGreaterThan(0);
        expect(at).toBeLessThan(settingsAt);
      }
      expect(ud).toContain("SSM_APP_PASSWORD='/redis-stack/prod/app-password'");
      expect(ud).toContain("SSM_MONITOR_PASSWORD='/redis-stack/prod/monitor-password'");
      expect(ud).toContain(`SSM_TLS_KEY='/redis-stack/prod/tls/${NAMES[i]}.key'`);
      expect(ud).toMatch(/DATA_VOLUME_ID='vol-0[0-9a-f]{16}'/);
      expect(ud).toContain(`SSM_TLS_CERT='/redis-stack/prod/tls/${NAMES[i]}.crt'`);
      expect(ud).not.toContain("BEGIN CERTIFICATE");
      for (const s of secrets) expect(ud).not.toContain(s);
      expect(ud).not.toContain("PRIVATE KEY");
      // EC2's limit applies to what it receives: the gzip bytes.
      const shipped = Buffer.from(String(one("aws:ec2/instance:Instance", `-${NAMES[i]}`).userDataBase64), "base64");
      expect(shipped.length).toBeLessThan(USER_DATA_LIMIT_BYTES);
    }
    // The plan every node carries: masters with the 3 slot ranges, replicas following them.
    const plan = userDataOf("shard0-0").split("CLUSTER_PLAN='")[1].split("'")[0].split("\n");
    expect(plan.map((l) => l.split(" ").slice(3).join(" "))).toEqual([
      "master 0 0 5460",
      "master 1 5461 10922",
      "master 2 10923 16383",
      "replica 0 0 5460",
      "replica 1 5461 10922",
      "replica 2 10923 16383",
    ]);
  });

  test("every node has an auto-recover alarm (same instance, IP and volume) and alerts reach the configured email", () => {
    const alarms = byType(run.resources, "aws:cloudwatch/metricAlarm:MetricAlarm").map(inputs);
    const recover = alarms.filter((a) => a.metricName === "StatusCheckFailed_System");
    expect(recover).toHaveLength(6);
    for (const a of recover) expect(a.alarmActions).toContain("arn:aws:automate:us-east-1:ec2:recover");
    expect(one("aws:sns/topicSubscription:TopicSubscription", "-email")).toMatchObject({
      protocol: "email",
      endpoint: "oncall@example.com",
    });
  });

  test("every metric alarm reads the nodes' namespace and notifies the alert topic: pages with OK too, notices without", () => {
    const topic = "arn:aws:sns:us-east-1:123456789012:redis-prod-alarms-alerts";
    const ours = byType(run.resources, "aws:cloudwatch/metricAlarm:MetricAlarm")
      .map(inputs)
      .filter((a) => a.namespace === METRICS_NAMESPACE);
    const expected = alarmSpecs({
      stackDimension: "redis-stack-prod",
      nodes: planTopology(3, 1, 3).map((n) => ({ name: n.name, shard: n.shard })),
      topology: "cluster",
      shards: 3,
      replicasPerShard: 1,
      periodSeconds: 60,
      persistence: "aof+rdb",
      maxmemoryPolicy: "allkeys-lru", // Pulumi.prod.yaml
      thresholds: DEFAULT_ALARM_THRESHOLDS,
      backupIntervalHours: 6, // the default
      tls: true, // the default
    });
    expect(ours).toHaveLength(expected.length);
    // The collection period, but for the stale-backup alarms: one backup interval each.
    expect(new Set(expected.map((s) => s.periodSeconds))).toEqual(new Set([60, 6 * 3600]));
    for (const spec of expected) {
      const a = one("aws:cloudwatch/metricAlarm:MetricAlarm", `-alarms-${spec.id}`);
      expect(a).toMatchObject({
        namespace: "RedisStack",
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
        alarmActions: [topic],
        okActions: spec.severity === "page" ? [topic] : [],
      });
      expect(String(a.alarmDescription)).toMatch(/ To do: .+ Runbook: README\.md#monitoring/);
    }
    // prod runs allkeys-lru: a full cache is a notice.
    const notices = ours.filter((a) => (a.okActions as string[]).length === 0).map((a) => a.metricName);
    expect(notices.sort()).toEqual(["MemoryPercentOfMaxmemory", "RdbSecondsSinceLastSave", "RoleChanged"]);
    // The silent-node alarms: one per node, on the node's own series.
    const silent = ours.filter((a) => a.metricName === "Up").map((a) => (a.dimensions as Record<string, string>).Node);
    expect(silent.sort()).toEqual([...NAMES].sort());
  });

  test("the dashboard: valid JSON naming only the nodes' metrics, in their namespace and the stack's region", () => {
    const d = one("aws:cloudwatch/dashboard:Dashboard", "-alarms-dashboard");
    expect(d.dashboardName).toBe("redis-stack-prod");
    const body = JSON.parse(String(d.dashboardBody)) as {
      widgets: { type: string; properties: { region: string; metrics: unknown[][] } }[];
    };
    expect(body.widgets.length).toBeGreaterThan(0);
    for (const w of body.widgets) {
      expect(w.type).toBe("metric");
      expect(w.properties.region).toBe("us-east-1");
      for (const line of w.properties.metrics) {
        expect(line[0]).toBe(METRICS_NAMESPACE);
        expect(METRIC_NAMES).toContain(line[1]);
        expect(line).toEqual(expect.arrayContaining(["Stack", "redis-stack-prod"]));
      }
    }
  });
});

describe("prod stack outputs", () => {
  test("the connection contract: cluster mode, 6 nodes masters first, TLS with the stack's CA", async () => {
    const o = run.outputs;
    if (!o) throw new Error("no outputs");
    expect(await valueOf(o.target)).toBe("ec2");
    expect(await valueOf(o.clusterMode)).toBe(true);
    expect(await valueOf(o.tls)).toBe(true);
    const nodes = await valueOf(o.nodes);
    expect(nodes).toHaveLength(6);
    for (const n of nodes) expect(n).toMatch(/^10\.40\.\d+\.\d+:6379$/);
    expect(await valueOf(o.caCertificate)).toBe(FAKE.cert("redis-prod-ca"));
    const url = await valueOf(o.redisUrl);
    expect(url).toBe(`rediss://app:${FAKE.password("redis-prod-app-password")}@${nodes[0]}`);
    const env = await valueOf(o.env);
    expect(env).toEqual({
      REDIS_URL: url,
      REDIS_CLUSTER_MODE: "true",
      REDIS_CLUSTER_NODES: nodes.join(","),
      REDIS_TLS: "true",
      REDIS_MAX_RETRIES: "10",
      REDIS_CONNECT_TIMEOUT: "5000",
      // The stack's own CA, in the env apps read as well as in caCertificate.
      REDIS_CA_PEM: FAKE.cert("redis-prod-ca"),
    });
    expect(await valueOf(o.clientSecurityGroupId as pulumi.Output<string>)).toBe("redis-prod-client-id");
    // Where an app deploy sits: the VPC the stack created and its private subnets, the nodes' own.
    expect(await valueOf(o.vpcId as pulumi.Output<string>)).toBe("redis-prod-net-vpc-id");
    const subnetIds = await valueOf(o.subnetIds as pulumi.Output<string[]>);
    expect(subnetIds).toEqual([0, 1, 2].map((i) => `redis-prod-net-private-${i}-id`));
    const nodeSubnets = byType(run.resources, "aws:ec2/networkInterface:NetworkInterface").map((r) =>
      String(inputs(r).subnetId),
    );
    expect([...new Set(nodeSubnets)].sort()).toEqual(subnetIds);
    expect(await valueOf(o.monitoring)).toEqual({
      alertTopicArn: "arn:aws:sns:us-east-1:123456789012:redis-prod-alarms-alerts",
      dashboardUrl:
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards:name=redis-stack-prod",
      // A preview never waits for the nodes; `pulumi up` does (tests/unit/health.test.ts).
      healthyAt: "not checked in a preview",
    });
  });

  test("only the URL and the env map are secret; nothing else carries a secret value", async () => {
    const o = run.outputs;
    if (!o) throw new Error("no outputs");
    expect(await pulumi.isSecret(o.redisUrl)).toBe(true);
    expect(await pulumi.isSecret(o.env)).toBe(true);
    for (const key of [
      "target",
      "clusterMode",
      "nodes",
      "tls",
      "caCertificate",
      "vpcId",
      "subnetIds",
      "clientSecurityGroupId",
      "monitoring",
    ] as const) {
      expect(await pulumi.isSecret(o[key] as pulumi.Output<unknown>)).toBe(false);
      const text = JSON.stringify(await valueOf(o[key] as pulumi.Output<unknown>));
      expect(text).not.toContain(FAKE.password("redis-prod-app-password"));
      expect(text).not.toContain("PRIVATE KEY");
    }
  });
});
