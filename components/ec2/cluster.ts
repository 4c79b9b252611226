/**
 * Self-hosted Redis on EC2 (docs/architecture.md): a Redis Cluster, or one primary with replicas and Sentinel.
 * `RedisEc2Cluster` is the library's component: typed arguments (components/ec2/args.ts), validated and
 * resolved before anything is created (components/ec2/resolve.ts), then wired by `ClusterWiring`, whose
 * methods read as the steps of a deploy, each wiring one group of resources. Topology, addresses, redis.conf
 * and user-data come from the pure modules beside it.
 */
import * as pulumi from "@pulumi/pulumi";
import { componentData } from "../componentData";
import * as aws from "@pulumi/aws";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { ClientSettings, Ec2Settings, EvictionPolicy, Persistence } from "../config/settings";
import { ConfigError, ProblemAudience } from "../config/problems";
import { addressedTopology, NodeAddress } from "./topology";
import {
  APP_USER,
  CLUSTER_BUS_OFFSET,
  EXPORTER_PORT,
  REDIS_PORT,
  TLS_CERT_VALIDITY_DAYS,
  TLS_RENEWAL_DAYS,
} from "./node/redisConf";
import {
  certificateSha256,
  ClusterSpec,
  encodeUserData,
  renderNodeUserData,
  SsmNames,
  ssmShippedScripts,
} from "./node/userData";
import { connectionOutputs, ConnectionOutputs, TlsFacts } from "../contract/connection";
import { RedisVpc } from "./network";
import { NodeAlarms } from "../monitoring/nodeAlarms";
import { monitoringInput } from "../monitoring/alarms";
import { clusterKeyPolicy, nodeRolePolicy } from "./iam";
import { ExpectedNode, ParameterReader, ssmReader, waitForCluster } from "./health";
import { renderDesiredSettings, rollOrder, versionOf } from "./desired";
import { appAclRules } from "./node/appAcl";
import { DeployedShape, deploymentOf, nodeChange } from "./day2";
import { SENTINEL_PORT } from "./sentinel";
import { clusterNames, RedisEc2ClusterArgs } from "./args";
import { Placement, resolveCluster, ResolvedCluster } from "./resolve";
import { backupBucketPolicy, backupKeyAlias, backupLifecycleRules, retainedVolumeTags } from "./backups";
import { createBackupBucket, createRetainedKey } from "../backup/bucket";

/** Debian's official AMIs (Debian 12 ships Redis 7.0.15, the version the integration tests run). */
export const DEBIAN_AMI_OWNER = "136693071363";

/** What the wiring builds from: the resolved settings and the names derived for this cluster. */
interface ClusterPlan {
  settings: Ec2Settings;
  maxmemoryPolicy: EvictionPolicy;
  persistence: Persistence;
  tls: boolean;
  allowedCidrs: string[];
  alertEmail?: string;
  client: ClientSettings;
  placement: Placement;
  /** SSM parameter names for this stack (the instance role may read only below `ssm.prefix`). */
  ssm: SsmNames;
  /** The Stack dimension of the nodes' metrics (metrics.ts stackDimension). */
  metricsStack: string;
  /** The Sentinel topology's master name (REDIS_SENTINEL_MASTER; sentinel.ts sentinelMasterName). */
  sentinelMaster: string;
  /** The cluster's prefix in its backup bucket (backups.ts backupObjectPrefix). */
  backupPrefix: string;
  /** How the health wait reads node status (default: SSM with the deployer's credentials). */
  healthReader?: ParameterReader;
  /** What this stack deployed last (the component's `deployment`), if anything: day-2 changes roll and drain. */
  deployed?: DeployedShape;
  tags?: Record<string, string>;
}

/** Subnets per AZ and their CIDRs: known at preview, so node addresses are too. */
interface Network {
  vpcId: pulumi.Input<string>;
  subnetIds: pulumi.Input<string>[];
  cidrs: string[];
  azNames: string[];
  /** What must exist before a node boots: its route out (to the package mirror and SSM). */
  egressRoutes: pulumi.Resource[];
}

interface SecurityGroups {
  client: aws.ec2.SecurityGroup;
  nodes: aws.ec2.SecurityGroup;
}

/**
 * Where the stack's secrets are written: under the cluster's key, once the node role may decrypt it through
 * SSM (`after`), so no node boots unable to read one (on an existing stack, the update that moves them from
 * aws/ssm to the cluster's key).
 */
interface SecretVault {
  keyArn: pulumi.Output<string>;
  after: pulumi.Resource;
}

interface Secrets {
  appPassword: random.RandomPassword;
}

/** The cluster's backup bucket. */
interface Backups {
  bucketName: pulumi.Output<string>;
}

/** The cluster's KMS key (secrets, volumes, backups, alerts) and the account it belongs to. */
interface ClusterKey {
  key: aws.kms.Key;
  account: pulumi.Output<string>;
}

interface NodeInstance {
  name: string;
  instanceId: pulumi.Output<string>;
  instanceType: pulumi.Output<string>;
}

/** Wires one cluster's resources under its component, in the steps of a deploy. */
class ClusterWiring {
  private readonly sentinel: boolean;
  private nodes: NodeAddress[] = [];

  constructor(
    private readonly component: RedisEc2Cluster,
    private readonly baseName: string,
    private readonly args: ClusterPlan,
  ) {
    this.sentinel = args.settings.topology === "sentinel";
  }

  build(): ClusterData {
    const name = this.baseName;
    const args = this.args;
    const s = args.settings;

    const network = this.network();
    this.nodes = addressedTopology(s.shards, s.replicasPerShard, network.cidrs, s.ipHostOffset, REDIS_PORT);
    const groups = this.securityGroups(network.vpcId);
    const key = this.clusterKey();
    const backups = this.backups(key);
    const { profile, rolePolicy } = this.identity(backups, key);
    const vault = { keyArn: key.key.arn, after: rolePolicy };
    const secrets = this.secrets(vault);
    const trust: TlsFacts = args.tls ? { tls: true, caCertificate: this.tlsMaterial(vault) } : { tls: false };
    const deployment = deploymentOf(name, s, args.tls);
    const desired = this.desiredSettings();
    const scripts = this.shippedScripts();
    const instances = this.nodeInstances(network, groups.nodes, profile, scripts, backups, key.key, trust);
    const { leaving } = nodeChange(args.deployed, deployment);
    this.announceChange(leaving);
    // Leaving shards are drained before Pulumi deletes their nodes (deletes run after the program ends,
    // and the program ends only once this wait has), whatever healthTimeoutMinutes says.
    const healthyAt =
      s.healthTimeoutMinutes > 0 || leaving.length > 0
        ? this.waitUntilHealthy(instances, desired, leaving)
        : pulumi.output("not checked");
    const alarms = new NodeAlarms(
      `${name}-alarms`,
      {
        region: s.region,
        alertEmail: args.alertEmail,
        kmsKeyArn: key.key.arn,
        instances,
        metrics: monitoringInput(
          s,
          args,
          args.metricsStack,
          this.nodes.map((n) => ({ name: n.node.name, shard: n.node.shard })),
        ),
        tags: args.tags,
      },
      { parent: this.component },
    );

    const connection = connectionOutputs({
      target: "ec2",
      nodes: this.nodes.map((n) => `${n.ip}:${n.port}`),
      username: APP_USER,
      password: secrets.appPassword.result,
      ...trust,
      clusterMode: !this.sentinel,
      sentinel: this.sentinel
        ? { masterName: args.sentinelMaster, sentinels: this.nodes.map((n) => `${n.ip}:${SENTINEL_PORT}`) }
        : undefined,
      client: args.client,
    });
    const monitoring = pulumi
      .all([alarms.topicArn, alarms.dashboardUrl, healthyAt])
      .apply(([alertTopicArn, dashboardUrl, at]): MonitoringOutput => ({ alertTopicArn, dashboardUrl, healthyAt: at }));
    return {
      plan: this.nodes,
      outputs: {
        ...connection,
        vpcId: pulumi.output(network.vpcId),
        subnetIds: pulumi.all(network.subnetIds),
        clientSecurityGroupId: groups.client.id,
        deployment: pulumi.output(deployment),
        monitoring,
        backupBucket: backups.bucketName,
        backupPrefix: pulumi.output(args.backupPrefix),
      },
      alertTopicArn: alarms.topicArn,
      dashboardUrl: alarms.dashboardUrl,
      healthyAt,
    };
  }

  /** What this update does to the running cluster, in Pulumi's log: shards added or drained, data at risk. */
  private announceChange(leaving: string[]): void {
    const { settings: s, deployed, persistence } = this.args;
    const log = (m: string) => void pulumi.log.warn(m, this.component);
    if (persistence === "none")
      log("persistence is 'none': data will not survive a restart of a node (or of the whole Redis Cloud database)");
    if (deployed && s.shards !== deployed.shards) {
      const grows = s.shards > deployed.shards;
      log(
        `shards ${deployed.shards} -> ${s.shards}: this update ${grows ? "adds" : "drains and removes"} ${Math.abs(s.shards - deployed.shards)} shard(s). ` +
          (grows
            ? "New masters join empty; the cluster moves their share of the slots to them once their replicas are in."
            : "Their slots move to the remaining masters before their nodes are deleted; their data volumes are retained."),
      );
    }
    if (leaving.length > 0)
      void pulumi.log.info(`nodes leaving after their slots are drained: ${leaving.join(", ")}`, this.component);
  }

  /**
   * The desired settings every running node converges to (components/ec2/desired.ts): the live Redis
   * settings, the plan (who is in the cluster) and the roll generation. Returns the text as written.
   */
  private desiredSettings(): pulumi.Output<string> {
    const s = this.args.settings;
    const text = renderDesiredSettings({
      maxmemoryBytes: s.maxmemoryBytes,
      maxmemoryPolicy: this.args.maxmemoryPolicy,
      nodeTimeoutMs: s.nodeTimeoutMs,
      persistence: this.args.persistence,
      generation: s.nodeGeneration,
      plan: this.nodes,
      appAclRules: appAclRules(s.appAclGrants),
    });
    const param = this.publicParam(
      "settings",
      this.args.ssm.settings,
      text,
      "Desired settings of the Redis nodes (applied live by each node's redis-node-settings.timer)",
    );
    // The text itself (the parameter's value output is secret by the provider's schema), once written.
    return param.id.apply(() => text);
  }

  private tags(role: string): Record<string, string> {
    return { Name: `${this.baseName}-${role}`, ...this.args.tags };
  }

  /** The VPC and its private subnets, created here unless the stack was given them. */
  private network(): Network {
    const placement = this.args.placement;
    if (placement.kind === "existing") {
      return {
        vpcId: placement.vpcId,
        subnetIds: placement.zones.map((z) => z.subnetId),
        cidrs: placement.zones.map((z) => z.cidr),
        azNames: placement.zones.map((z) => z.name),
        egressRoutes: [],
      };
    }
    const vpc = new RedisVpc(
      `${this.baseName}-net`,
      { cidr: placement.vpcCidr, availabilityZones: placement.zones, tags: this.args.tags },
      { parent: this.component },
    );
    return {
      vpcId: vpc.vpcId,
      subnetIds: vpc.privateSubnetIds,
      cidrs: vpc.privateCidrs,
      azNames: placement.zones,
      egressRoutes: vpc.egressRoutes,
    };
  }

  /**
   * Apps carry the client SG; nodes accept 6379 and the Prometheus exporter's port (9121) from it, from each
   * other and from allowedCidrs, and the cluster bus (16379) only from each other. No 0.0.0.0/0 ingress
   * anywhere.
   */
  private securityGroups(vpcId: pulumi.Input<string>): SecurityGroups {
    const name = this.baseName;
    const client = new aws.ec2.SecurityGroup(
      `${name}-client`,
      { vpcId, description: "Attach to apps that may connect to Redis", tags: this.tags("client") },
      { parent: this.component },
    );
    const busPort = REDIS_PORT + CLUSTER_BUS_OFFSET;
    const tcp = (
      port: number,
      description: string,
      source: { self?: boolean; securityGroups?: pulumi.Input<string>[]; cidrBlocks?: string[] },
    ) => ({ description, protocol: "tcp", fromPort: port, toPort: port, ...source });
    // Redis and the exporter: from the nodes, the client group and allowedCidrs alike.
    const fromClients = (port: number, what: string) => [
      tcp(port, `${what} from cluster nodes`, { self: true }),
      tcp(port, `${what} from apps with the client security group`, { securityGroups: [client.id] }),
      ...(this.args.allowedCidrs.length > 0
        ? [tcp(port, `${what} from allowedCidrs`, { cidrBlocks: this.args.allowedCidrs })]
        : []),
    ];
    // Sentinel topology: Sentinels talk to each other and answer apps on 26379; no cluster bus.
    const nodes = new aws.ec2.SecurityGroup(
      `${name}-nodes`,
      {
        vpcId,
        description: this.sentinel ? "Redis nodes with Sentinel" : "Redis Cluster nodes",
        ingress: [
          ...fromClients(REDIS_PORT, "redis"),
          ...(this.sentinel
            ? fromClients(SENTINEL_PORT, "sentinel")
            : [tcp(busPort, "cluster bus from cluster nodes", { self: true })]),
          ...fromClients(EXPORTER_PORT, "prometheus exporter"),
        ],
        egress: [
          {
            description: "package installs, SSM, CloudWatch (through the NAT)",
            protocol: "-1",
            fromPort: 0,
            toPort: 0,
            cidrBlocks: ["0.0.0.0/0"],
          },
        ],
        tags: this.tags("nodes"),
      },
      { parent: this.component },
    );
    // A group Pulumi manages loses AWS's default allow-all egress: without these rules an app (or a
    // Prometheus) that holds only the client group could not open a connection to the nodes.
    for (const [id, port, description] of [
      ["client-to-redis", REDIS_PORT, "redis on the cluster nodes"],
      ["client-to-exporter", EXPORTER_PORT, "prometheus exporter on the cluster nodes"],
      ...(this.sentinel ? ([["client-to-sentinel", SENTINEL_PORT, "sentinel on the nodes"]] as const) : []),
    ] as const) {
      new aws.vpc.SecurityGroupEgressRule(
        `${name}-${id}`,
        {
          securityGroupId: client.id,
          description,
          ipProtocol: "tcp",
          fromPort: port,
          toPort: port,
          referencedSecurityGroupId: nodes.id,
          tags: this.tags(id),
        },
        { parent: this.component },
      );
    }
    return { client, nodes };
  }

  /** The scripts that reach the nodes through SSM (too big for the user-data), written before any node boots. */
  private shippedScripts(): aws.ssm.Parameter[] {
    return ssmShippedScripts(this.args.ssm).flatMap((script) =>
      script.chunks.map((c, i) =>
        this.publicParam(
          `script-${script.name}-${i}`,
          c.parameter,
          c.value,
          `${script.path} on the Redis nodes, part ${i + 1} of ${script.chunks.length} (gzip+base64; sha256 ${script.sha256})`,
        ),
      ),
    );
  }

  /** A SecureString under the cluster's key, written once the node role may decrypt it (SecretVault). */
  private secureParam(
    vault: SecretVault,
    id: string,
    paramName: string,
    value: pulumi.Input<string>,
    description: string,
  ) {
    return new aws.ssm.Parameter(
      `${this.baseName}-${id}`,
      {
        name: paramName,
        type: "SecureString",
        keyId: vault.keyArn,
        value: pulumi.secret(value),
        description,
        tags: this.tags(id),
      },
      { parent: this.component, dependsOn: [vault.after] },
    );
  }

  private publicParam(id: string, paramName: string, value: pulumi.Input<string>, description: string) {
    return new aws.ssm.Parameter(
      `${this.baseName}-${id}`,
      { name: paramName, type: "String", tier: "Standard", value, description, tags: this.tags(id) },
      { parent: this.component },
    );
  }

  /** Passwords: generated here, stored as SSM SecureString, read by the nodes at boot. */
  private secrets(vault: SecretVault): Secrets {
    const name = this.baseName;
    const ssm = this.args.ssm;
    const appPassword = new random.RandomPassword(
      `${name}-app-password`,
      { length: 32, special: false },
      { parent: this.component },
    );
    const adminPassword = new random.RandomPassword(
      `${name}-admin-password`,
      { length: 32, special: false },
      { parent: this.component },
    );
    // Alphanumeric like the others: the exporter's password file is JSON that node.sh writes verbatim.
    const monitorPassword = new random.RandomPassword(
      `${name}-monitor-password`,
      { length: 32, special: false },
      { parent: this.component },
    );
    this.secureParam(vault, "app-password", ssm.appPassword, appPassword.result, "Redis password of the app user");
    this.secureParam(
      vault,
      "admin-password",
      ssm.adminPassword,
      adminPassword.result,
      "Redis password of the admin user (the nodes' own tooling, operators)",
    );
    const replicationPassword = new random.RandomPassword(
      `${name}-replication-password`,
      { length: 32, special: false },
      { parent: this.component },
    );
    this.secureParam(
      vault,
      "replication-password",
      ssm.replicationPassword,
      replicationPassword.result,
      "Redis password of the replication user (replicas logging in to their master)",
    );
    this.secureParam(
      vault,
      "monitor-password",
      ssm.monitorPassword,
      monitorPassword.result,
      "Redis password of the monitor user (each node's Prometheus exporter)",
    );
    if (this.sentinel) {
      const sentinelPassword = new random.RandomPassword(
        `${name}-sentinel-password`,
        { length: 32, special: false },
        { parent: this.component },
      );
      this.secureParam(
        vault,
        "sentinel-password",
        ssm.sentinelPassword,
        sentinelPassword.result,
        "Redis password of the sentinel user (Sentinels on the data nodes and on each other)",
      );
    }
    return { appPassword };
  }

  /**
   * A CA and one certificate per node (its fixed IP as SAN). All of it goes to SSM (keys as
   * SecureString), where nodes read it at boot. Returns the CA certificate.
   */
  private tlsMaterial(vault: SecretVault): pulumi.Output<string> {
    const name = this.baseName;
    const ssm = this.args.ssm;
    const caKey = new tls.PrivateKey(
      `${name}-ca`,
      { algorithm: "ECDSA", ecdsaCurve: "P256" },
      { parent: this.component },
    );
    const ca = new tls.SelfSignedCert(
      `${name}-ca`,
      {
        privateKeyPem: caKey.privateKeyPem,
        isCaCertificate: true,
        subject: { commonName: `${name} Redis CA`, organization: "redis-stack" },
        validityPeriodHours: 10 * 365 * 24,
        allowedUses: ["certSigning", "crlSigning"],
      },
      { parent: this.component },
    );
    this.publicParam("ca-cert", ssm.tlsCa, ca.certPem, "CA certificate of the Redis nodes");
    for (const n of this.nodes) {
      const nodeName = n.node.name;
      const key = new tls.PrivateKey(
        `${name}-${nodeName}-tls`,
        { algorithm: "ECDSA", ecdsaCurve: "P256" },
        { parent: this.component },
      );
      const csr = new tls.CertRequest(
        `${name}-${nodeName}-tls`,
        { privateKeyPem: key.privateKeyPem, subject: { commonName: nodeName }, ipAddresses: [n.ip] },
        { parent: this.component },
      );
      const cert = new tls.LocallySignedCert(
        `${name}-${nodeName}-tls`,
        {
          certRequestPem: csr.certRequestPem,
          caPrivateKeyPem: caKey.privateKeyPem,
          caCertPem: ca.certPem,
          validityPeriodHours: TLS_CERT_VALIDITY_DAYS * 24,
          earlyRenewalHours: TLS_RENEWAL_DAYS * 24,
          allowedUses: ["digitalSignature", "keyEncipherment", "serverAuth", "clientAuth"],
        },
        { parent: this.component },
      );
      this.secureParam(
        vault,
        `${nodeName}-tls-key`,
        ssm.tlsKey(nodeName),
        key.privateKeyPem,
        `TLS private key of ${nodeName}`,
      );
      this.publicParam(`${nodeName}-tls-cert`, ssm.tlsCert(nodeName), cert.certPem, `TLS certificate of ${nodeName}`);
    }
    return ca.certPem;
  }

  /**
   * The cluster's KMS key, rotated yearly (components/ec2/iam.ts clusterKeyPolicy): it encrypts the stack's
   * SecureStrings, the data and root volumes, the backups and the alert topic. It outlives the stack, as
   * the backups and volumes it encrypts do. It began as the backups' key and keeps that resource's name
   * (a new name would replace the key under every backup) and its alias.
   */
  private clusterKey(): ClusterKey {
    const name = `${this.baseName}-backups`;
    const account = aws.getCallerIdentityOutput({}, { parent: this.component }).accountId;
    const key = createRetainedKey(name, {
      parent: this.component,
      tags: this.tags("backups"),
      description: `Redis cluster ${this.baseName} in Pulumi stack ${pulumi.getProject()}/${pulumi.getStack()}: its SSM secrets, volumes, backups and alerts`,
      policy: account.apply((a) => JSON.stringify(clusterKeyPolicy(a))),
    });
    new aws.kms.Alias(
      name,
      { name: backupKeyAlias(this.args.backupPrefix), targetKeyId: key.keyId },
      { parent: this.component },
    );
    return { key, account };
  }

  /**
   * The cluster's backups (components/ec2/backups.ts): a bucket encrypted with the cluster's key,
   * versioned, private, TLS-only, whose lifecycle expires backups after backupRetentionDays. Created
   * whatever backupIntervalHours says (on-demand backups need it too). Backups outlive the stack, like the
   * data volumes: `pulumi destroy` leaves the key and the bucket as they are, and never empties the bucket
   * (forceDestroy false); only the alias and the lifecycle go, so a destroyed stack's last backups are not
   * expired behind its back (docs/runbook.md, "Backups").
   */
  private backups(key: ClusterKey): Backups {
    const name = `${this.baseName}-backups`;
    const { backupPrefix: prefix, settings: s } = this.args;
    const { bucket } = createBackupBucket(name, {
      parent: this.component,
      tags: this.tags("backups"),
      key: key.key,
      bucketPolicy: backupBucketPolicy,
      lifecycleRules: backupLifecycleRules(prefix, s.backupRetentionDays),
    });
    return { bucketName: bucket.bucket };
  }

  /**
   * The instance role and profile: Session Manager (no SSH), reads of this stack's parameters only, and its
   * backups below the cluster's prefix (components/ec2/iam.ts; no AWS-managed policy, they grant reads on
   * every parameter).
   */
  private identity(
    backups: Backups,
    key: ClusterKey,
  ): { profile: aws.iam.InstanceProfile; rolePolicy: aws.iam.RolePolicy } {
    const name = this.baseName;
    const role = new aws.iam.Role(
      `${name}-node`,
      {
        assumeRolePolicy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
        }),
        tags: this.tags("node"),
      },
      { parent: this.component },
    );
    const rolePolicy = new aws.iam.RolePolicy(
      `${name}-node`,
      {
        role: role.id,
        policy: pulumi
          .all([key.account, backups.bucketName, key.key.arn])
          .apply(([account, bucket, keyArn]) =>
            JSON.stringify(
              nodeRolePolicy(
                this.args.settings.region,
                account,
                this.args.ssm.prefix,
                this.args.ssm.statusPrefix,
                keyArn,
                { bucket, prefix: this.args.backupPrefix, restoreFrom: this.args.settings.restoreFrom },
              ),
            ),
          ),
      },
      { parent: this.component },
    );
    const profile = new aws.iam.InstanceProfile(
      `${name}-node`,
      { role: role.name, tags: this.tags("node") },
      { parent: this.component },
    );
    return { profile, rolePolicy };
  }

  /**
   * `pulumi up` ends when every node reports `ok` from its current instance and type, with the desired
   * settings applied (components/ec2/health.ts), and every leaving node serves no slot; or fails naming the
   * node and its reason. The wait runs in an apply, only during an update (never in a preview), and again
   * at each `pulumi up`, where healthy nodes answer at once.
   */
  private waitUntilHealthy(
    instances: NodeInstance[],
    desired: pulumi.Output<string>,
    leaving: string[],
  ): pulumi.Output<string> {
    const s = this.args.settings;
    const read = this.args.healthReader ?? ssmReader(s.region);
    const ids = pulumi.all(instances.map((i) => i.instanceId));
    const types = pulumi.all(instances.map((i) => i.instanceType));
    return pulumi.all([ids, types, desired]).apply(async ([idList, typeList, text]) => {
      if (pulumi.runtime.isDryRun()) return "not checked in a preview";
      const settingsVersion = versionOf(text);
      const expected: ExpectedNode[] = [
        ...instances.map((i, k) => ({
          name: i.name,
          parameter: this.args.ssm.status(i.name),
          instanceId: idList[k],
          instanceType: typeList[k],
          settingsVersion,
          generation: s.nodeGeneration,
        })),
        ...leaving.map((name) => ({ name, parameter: this.args.ssm.status(name), settingsVersion, drained: true })),
      ];
      await waitForCluster(expected, read, {
        timeoutMs: Math.max(s.healthTimeoutMinutes, leaving.length > 0 ? 120 : 0) * 60_000,
        log: (m) => void pulumi.log.info(m, this.component),
      });
      return new Date().toISOString();
    });
  }

  /**
   * The gate before the next node's change: once this node's instance is updated (or replaced), wait until
   * it reports `ok` from that instance and type, so no two nodes are down at once. Nodes this update
   * creates pass at once (the cluster forms with every node up).
   */
  private rollGate(name: string, instanceId: pulumi.Output<string>, type: pulumi.Output<string>) {
    const s = this.args.settings;
    const read = this.args.healthReader ?? ssmReader(s.region);
    const existed = this.args.deployed?.nodes.includes(name) ?? false;
    return pulumi.all([instanceId, type]).apply(async ([id, instanceType]) => {
      if (!existed || pulumi.runtime.isDryRun()) return name;
      await waitForCluster([{ name, parameter: this.args.ssm.status(name), instanceId: id, instanceType }], read, {
        timeoutMs: Math.max(s.healthTimeoutMinutes, 10) * 60_000,
        log: (m) => void pulumi.log.info(m, this.component),
      });
      return name;
    });
  }

  /** Per node: an ENI with its fixed address, an encrypted data volume, the instance and the attachment. */
  private nodeInstances(
    network: Network,
    nodesSg: aws.ec2.SecurityGroup,
    profile: aws.iam.InstanceProfile,
    scripts: aws.ssm.Parameter[],
    backups: Backups,
    key: aws.kms.Key,
    trust: TlsFacts,
  ): NodeInstance[] {
    const name = this.baseName;
    const s = this.args.settings;
    const ami = s.amiId
      ? { id: pulumi.output(s.amiId) }
      : aws.ec2.getAmiOutput(
          {
            owners: [DEBIAN_AMI_OWNER],
            mostRecent: true,
            filters: [
              { name: "name", values: [`debian-12-${s.architecture === "arm64" ? "arm64" : "amd64"}-*`] },
              { name: "architecture", values: [s.architecture] },
              { name: "virtualization-type", values: ["hvm"] },
            ],
          },
          { parent: this.component },
        );
    const spec: ClusterSpec = {
      nodeTimeoutMs: s.nodeTimeoutMs,
      maxmemoryBytes: s.maxmemoryBytes,
      maxmemoryPolicy: this.args.maxmemoryPolicy,
      persistence: this.args.persistence,
      region: s.region,
      ssm: this.args.ssm,
      metrics: { stack: this.args.metricsStack, intervalSeconds: s.metricsIntervalSeconds },
      sentinel: this.sentinel ? { masterName: this.args.sentinelMaster } : undefined,
    };
    // Nodes change one at a time in the roll order (replicas first): each instance waits for the previous
    // one's update and for that node to report healthy again (rollGate).
    const order = rollOrder(this.nodes);
    const created = new Map<string, NodeInstance & { instance: aws.ec2.Instance }>();
    let previous: (NodeInstance & { instance: aws.ec2.Instance }) | undefined;
    for (const nodeName of order) {
      const n = this.nodes.find((x) => x.node.name === nodeName);
      if (!n) throw new Error(`no node ${nodeName} in the plan`);
      // The ENI holds the node's fixed address; a replaced instance gets it back, and with it its identity.
      const eni = new aws.ec2.NetworkInterface(
        `${name}-${nodeName}`,
        {
          subnetId: network.subnetIds[n.node.azIndex],
          privateIps: [n.ip],
          securityGroups: [nodesSg.id],
          description: `${nodeName} (${n.node.role}, shard ${n.node.shard})`,
          tags: this.tags(nodeName),
        },
        { parent: this.component },
      );
      const volume = new aws.ebs.Volume(
        `${name}-${nodeName}-data`,
        {
          availabilityZone: network.azNames[n.node.azIndex],
          size: s.dataVolumeGb,
          type: "gp3",
          encrypted: true,
          kmsKeyId: key.arn,
          tags: {
            ...this.tags(`${nodeName}-data`),
            ...retainedVolumeTags(`${pulumi.getProject()}/${pulumi.getStack()}`, nodeName),
          },
        },
        // Data outlives the stack: removing a node, a shard or the stack leaves the volume, tagged so it can be
        // found and deleted (docs/runbook.md, "Backups": retained volumes). A volume's key cannot change in
        // place (a new key replaces the volume, and its data): volumes made before the cluster key existed keep
        // the account's aws/ebs key (docs/security.md, "The cluster's key").
        { parent: this.component, retainOnDelete: true, ignoreChanges: ["kmsKeyId"] },
      );
      // With TLS, the node accepts only the stack's CA (its SHA-256 in the user-data; node.sh ca_pin_problem).
      const ca = trust.tls ? trust.caCertificate : "";
      const userData = pulumi.all([volume.id, backups.bucketName, ca]).apply(([volumeId, bucket, caPem]) =>
        encodeUserData(
          renderNodeUserData(
            {
              ...spec,
              backup: {
                bucket,
                prefix: this.args.backupPrefix,
                intervalHours: s.backupIntervalHours,
                restoreFrom: s.restoreFrom,
              },
            },
            this.nodes,
            n,
            volumeId,
            trust.tls ? { caSha256: certificateSha256(caPem) } : false,
          ),
        ),
      );
      const instance = new aws.ec2.Instance(
        `${name}-${nodeName}`,
        {
          ami: ami.id,
          instanceType: s.instanceType,
          iamInstanceProfile: profile.name,
          primaryNetworkInterface: { networkInterfaceId: eni.id },
          metadataOptions: { httpTokens: "required", httpEndpoint: "enabled", httpPutResponseHopLimit: 1 },
          rootBlockDevice: {
            encrypted: true,
            kmsKeyId: key.arn,
            volumeType: "gp3",
            volumeSize: 16,
            deleteOnTermination: true,
          },
          // gzip + base64: cloud-init unpacks it; keeps 3 x 3 clusters' scripts under EC2's 16 KB limit.
          userDataBase64: userData,
          userDataReplaceOnChange: false,
          tags: {
            ...this.tags(nodeName),
            "redis-stack:role": n.node.role,
            "redis-stack:shard": String(n.node.shard),
            // The node before this one in the roll order, once it is healthy: the rolling chain.
            ...(previous
              ? { "redis-stack:rolls-after": this.rollGate(previous.name, previous.instanceId, previous.instanceType) }
              : {}),
          },
        },
        // The ENI can back one instance at a time. The user-data runs once per instance: later changes
        // reach running nodes through the desired settings. The AMI changes only when amiId is set.
        {
          parent: this.component,
          deleteBeforeReplace: true,
          // A root volume's key changes only with its instance (a roll): not in place, as for the data volume.
          ignoreChanges: [...(s.amiId ? [] : ["ami"]), "userDataBase64", "rootBlockDevice.kmsKeyId"],
          // The first boot installs packages: it must find the NAT route in place (see RedisVpc).
          // and, in SSM, the scripts its user-data names by checksum.
          dependsOn: [...network.egressRoutes, ...scripts, ...(previous ? [previous.instance] : [])],
        },
      );
      new aws.ec2.VolumeAttachment(
        `${name}-${nodeName}-data`,
        { deviceName: "/dev/sdf", volumeId: volume.id, instanceId: instance.id, stopInstanceBeforeDetaching: true },
        { parent: this.component },
      );
      previous = { name: nodeName, instanceId: instance.id, instanceType: instance.instanceType, instance };
      created.set(nodeName, previous);
    }
    return this.nodes.map((n) => {
      const made = created.get(n.node.name);
      if (!made) throw new Error(`no instance for ${n.node.name}`);
      return { name: made.name, instanceId: made.instanceId, instanceType: made.instanceType };
    });
  }
}

/** The `monitoring` output: the alert topic, the dashboard and when `pulumi up` saw every node healthy. */
export interface MonitoringOutput {
  alertTopicArn?: string;
  dashboardUrl?: string;
  healthyAt?: string;
}

/**
 * Everything a cluster exports, as one object (`export const cache = cluster.outputs`): the connection
 * contract, where an app must run to reach it, what runs and how it is watched. The repository's program
 * exports these names at the top of its stack; app deploys read `env`, `vpcId`, `subnetIds` and
 * `clientSecurityGroupId` through a StackReference.
 */
export type Ec2ClusterOutputs = ConnectionOutputs & {
  /** The VPC the nodes are in (created or given): apps deploy into it. */
  vpcId: pulumi.Output<string>;
  /** The private subnets the nodes are in, one per AZ. */
  subnetIds: pulumi.Output<string[]>;
  /** Apps holding this security group may connect to the nodes. */
  clientSecurityGroupId: pulumi.Output<string>;
  /** What runs: the next `pulumi up` reads it back from the stack's outputs (export it). */
  deployment: pulumi.Output<DeployedShape>;
  monitoring: pulumi.Output<MonitoringOutput>;
  /** The cluster's backup bucket (its name; docs/runbook.md, "Backups"). */
  backupBucket: pulumi.Output<string>;
  /** Where the cluster's backups are in it: `<prefix>/backups/<backupId>/...`. */
  backupPrefix: pulumi.Output<string>;
};

interface ClusterData {
  plan: NodeAddress[];
  outputs: Ec2ClusterOutputs;
  alertTopicArn: pulumi.Output<string>;
  dashboardUrl: pulumi.Output<string | undefined>;
  healthyAt: pulumi.Output<string>;
}

/**
 * The arguments ride to `initialize` under a symbol: Pulumi sends a component's string-keyed inputs to the
 * engine, and these are settings, not inputs the engine acts on (the deployed stacks' state holds none).
 */
const ARGUMENTS = Symbol("RedisEc2Cluster arguments");

/**
 * A self-hosted Redis on EC2: a Redis Cluster of `shards` masters with `replicasPerShard` replicas each (3 x 1
 * by default), or, with `topology: "sentinel"`, one primary with replicas and a Sentinel on every node. Every
 * argument is optional (`new RedisEc2Cluster("cache")` is the prod default), and is checked before anything
 * is created: a bad one fails `pulumi preview`, naming the argument and the fix.
 */
export class RedisEc2Cluster extends pulumi.ComponentResource<ClusterData> {
  readonly target: pulumi.Output<"cloud" | "ec2">;
  /** `rediss://app:<password>@<first node>` (secret). */
  readonly redisUrl: pulumi.Output<string>;
  readonly clusterMode: pulumi.Output<boolean>;
  /** `ip:6379` of every node, masters first. */
  readonly nodes: pulumi.Output<string[]>;
  readonly tls: pulumi.Output<boolean>;
  /** The CA that signed the nodes' certificates (with TLS; "" without). */
  readonly caCertificate: pulumi.Output<string>;
  /** The variables apps read (`REDIS_URL`, `REDIS_CLUSTER_MODE`, ...; secret). */
  readonly env: Ec2ClusterOutputs["env"];
  readonly vpcId: pulumi.Output<string>;
  readonly subnetIds: pulumi.Output<string[]>;
  readonly clientSecurityGroupId: pulumi.Output<string>;
  readonly deployment: pulumi.Output<DeployedShape>;
  readonly monitoring: pulumi.Output<MonitoringOutput>;
  readonly backupBucket: pulumi.Output<string>;
  readonly backupPrefix: pulumi.Output<string>;
  readonly alertTopicArn: pulumi.Output<string>;
  readonly dashboardUrl: pulumi.Output<string | undefined>;
  /** When `pulumi up` saw every node healthy (the update fails instead when it does not). */
  readonly healthyAt: pulumi.Output<string>;
  /** The planned nodes with their addresses and roles. */
  readonly plan: pulumi.Output<NodeAddress[]>;
  /** Every output above that a stack exports, as one object. */
  readonly outputs: Ec2ClusterOutputs;
  /** Settles once every resource is declared; rejects with the problems when the arguments are invalid. */
  readonly ready: Promise<void>;

  constructor(name: string, args: RedisEc2ClusterArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super("redis-stack:ec2:RedisCluster", name, { [ARGUMENTS]: args }, opts);
    const data = componentData(this.getData());
    const from = <T>(pick: (d: ClusterData) => pulumi.Output<T>): pulumi.Output<T> => data.pick(pick);
    const contract = <K extends keyof Ec2ClusterOutputs>(key: K) =>
      from((d) => d.outputs[key] as pulumi.Output<unknown>) as Ec2ClusterOutputs[K];
    this.outputs = {
      target: contract("target"),
      redisUrl: contract("redisUrl"),
      clusterMode: contract("clusterMode"),
      nodes: contract("nodes"),
      tls: contract("tls"),
      caCertificate: contract("caCertificate"),
      env: contract("env"),
      vpcId: contract("vpcId"),
      subnetIds: contract("subnetIds"),
      clientSecurityGroupId: contract("clientSecurityGroupId"),
      deployment: contract("deployment"),
      monitoring: contract("monitoring"),
      backupBucket: contract("backupBucket"),
      backupPrefix: contract("backupPrefix"),
    };
    ({
      target: this.target,
      redisUrl: this.redisUrl,
      clusterMode: this.clusterMode,
      nodes: this.nodes,
      tls: this.tls,
      caCertificate: this.caCertificate,
      env: this.env,
      vpcId: this.vpcId,
      subnetIds: this.subnetIds,
      clientSecurityGroupId: this.clientSecurityGroupId,
      deployment: this.deployment,
      monitoring: this.monitoring,
      backupBucket: this.backupBucket,
      backupPrefix: this.backupPrefix,
    } = this.outputs);
    this.alertTopicArn = from((d) => d.alertTopicArn);
    this.dashboardUrl = from((d) => d.dashboardUrl);
    this.healthyAt = from((d) => d.healthyAt);
    this.plan = data.pick((d) => d.plan);
    this.ready = data.ready;
  }

  protected async initialize(inputs: pulumi.Inputs, _opts: unknown, name: string): Promise<ClusterData> {
    const args = (inputs as { [ARGUMENTS]?: RedisEc2ClusterArgs })[ARGUMENTS] ?? {};
    const audience: ProblemAudience = args.configNamespace
      ? { config: args.configNamespace }
      : { component: `RedisEc2Cluster "${name}"` };
    let resolved: ResolvedCluster;
    try {
      resolved = await resolveCluster(name, args, audience, this);
    } catch (e) {
      // Pulumi prints a RunError's message alone: the problems, without a stack trace.
      throw e instanceof ConfigError ? new pulumi.RunError(e.message) : e;
    }
    const { settings, placement, deployed } = resolved;
    const data = new ClusterWiring(this, name, {
      settings: settings.ec2,
      maxmemoryPolicy: settings.maxmemoryPolicy,
      persistence: settings.persistence,
      tls: settings.tls,
      allowedCidrs: settings.allowedCidrs,
      alertEmail: settings.alertEmail,
      client: settings.client,
      placement,
      ...clusterNames(pulumi.getProject(), pulumi.getStack(), name),
      healthReader: args.healthReader,
      deployed,
      tags: { "redis-stack:stack": pulumi.getStack(), "redis-stack:project": pulumi.getProject(), ...args.tags },
    }).build();
    this.registerOutputs({
      ...data.outputs,
      alertTopicArn: data.alertTopicArn,
      dashboardUrl: data.dashboardUrl,
      healthyAt: data.healthyAt,
    });
    return data;
  }
}
