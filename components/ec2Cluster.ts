/**
 * Self-hosted Redis Cluster on EC2 (DESIGN.md section 4). The constructor only wires resources:
 * topology, addresses, redis.conf and user-data come from the pure modules beside it.
 */
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { ClientSettings, Ec2Settings, EvictionPolicy, Persistence } from "./config";
import { addressedTopology, NodeAddress } from "./topology";
import { APP_USER, CLUSTER_BUS_OFFSET, REDIS_PORT } from "./redisConf";
import { ClusterSpec, encodeUserData, renderNodeUserData, SsmNames } from "./userData";
import { connectionOutputs, ConnectionOutputs } from "./connection";
import { RedisVpc } from "./network";
import { NodeAlarms } from "./monitoring";

/** Debian's official AMIs (Debian 12 ships Redis 7.0.15, the version the integration tests run). */
export const DEBIAN_AMI_OWNER = "136693071363";

/** Where the nodes go: an existing VPC's subnets (one per AZ), or a VPC the component creates. */
export type Placement =
  | { kind: "existing"; vpcId: string; zones: { name: string; subnetId: string; cidr: string }[] }
  | { kind: "create"; vpcCidr: string; zones: string[] };

export interface RedisEc2ClusterArgs {
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
  tags?: Record<string, string>;
}

export class RedisEc2Cluster extends pulumi.ComponentResource {
  readonly connection: ConnectionOutputs;
  readonly clientSecurityGroupId: pulumi.Output<string>;
  readonly alertTopicArn: pulumi.Output<string>;
  /** The planned topology with addresses, for callers that want to show it. */
  readonly nodes: NodeAddress[];

  constructor(name: string, args: RedisEc2ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("redis-stack:ec2:RedisCluster", name, {}, opts);
    const s = args.settings;
    const tags = (role: string) => ({ Name: `${name}-${role}`, ...args.tags });
    const child = { parent: this };

    // Network: subnets per AZ and their CIDRs (known at preview, so addresses are too).
    let vpcId: pulumi.Input<string>;
    let subnetIds: pulumi.Input<string>[];
    let cidrs: string[];
    let azNames: string[];
    if (args.placement.kind === "create") {
      const vpc = new RedisVpc(
        `${name}-net`,
        { cidr: args.placement.vpcCidr, availabilityZones: args.placement.zones, tags: args.tags },
        child,
      );
      vpcId = vpc.vpcId;
      subnetIds = vpc.privateSubnetIds;
      cidrs = vpc.privateCidrs;
      azNames = args.placement.zones;
    } else {
      vpcId = args.placement.vpcId;
      subnetIds = args.placement.zones.map((z) => z.subnetId);
      cidrs = args.placement.zones.map((z) => z.cidr);
      azNames = args.placement.zones.map((z) => z.name);
    }
    const nodes = addressedTopology(s.shards, s.replicasPerShard, cidrs, s.ipHostOffset, REDIS_PORT);
    this.nodes = nodes;

    // Security groups: apps carry the client SG; nodes accept 6379 from it, from each other and from
    // allowedCidrs, and the cluster bus (16379) only from each other. No 0.0.0.0/0 ingress anywhere.
    const clientSg = new aws.ec2.SecurityGroup(
      `${name}-client`,
      { vpcId, description: "Attach to apps that may connect to Redis", tags: tags("client") },
      child,
    );
    const busPort = REDIS_PORT + CLUSTER_BUS_OFFSET;
    const redisSg = new aws.ec2.SecurityGroup(
      `${name}-nodes`,
      {
        vpcId,
        description: "Redis Cluster nodes",
        ingress: [
          {
            description: "redis from cluster nodes",
            protocol: "tcp",
            fromPort: REDIS_PORT,
            toPort: REDIS_PORT,
            self: true,
          },
          {
            description: "cluster bus from cluster nodes",
            protocol: "tcp",
            fromPort: busPort,
            toPort: busPort,
            self: true,
          },
          {
            description: "redis from apps with the client security group",
            protocol: "tcp",
            fromPort: REDIS_PORT,
            toPort: REDIS_PORT,
            securityGroups: [clientSg.id],
          },
          ...(args.allowedCidrs.length > 0
            ? [
                {
                  description: "redis from allowedCidrs",
                  protocol: "tcp",
                  fromPort: REDIS_PORT,
                  toPort: REDIS_PORT,
                  cidrBlocks: args.allowedCidrs,
                },
              ]
            : []),
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
        tags: tags("nodes"),
      },
      child,
    );

    // Secrets: generated here, stored as SSM SecureString, read by the nodes at boot.
    const appPassword = new random.RandomPassword(`${name}-app-password`, { length: 32, special: false }, child);
    const adminPassword = new random.RandomPassword(`${name}-admin-password`, { length: 32, special: false }, child);
    const secureParam = (id: string, paramName: string, value: pulumi.Input<string>, description: string) =>
      new aws.ssm.Parameter(
        `${name}-${id}`,
        { name: paramName, type: "SecureString", value: pulumi.secret(value), description, tags: tags(id) },
        child,
      );
    secureParam("app-password", args.ssm.appPassword, appPassword.result, "Redis password of the app user");
    secureParam(
      "admin-password",
      args.ssm.adminPassword,
      adminPassword.result,
      "Redis password of the admin user (tooling, replication)",
    );

    // TLS: a CA and one certificate per node (its fixed IP as SAN). All of it goes to SSM (keys as
    // SecureString), read by the node at boot: renewed certificates reach replaced or rebooted nodes.
    let ca: tls.SelfSignedCert | undefined;
    if (args.tls) {
      const caKey = new tls.PrivateKey(`${name}-ca`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, child);
      ca = new tls.SelfSignedCert(
        `${name}-ca`,
        {
          privateKeyPem: caKey.privateKeyPem,
          isCaCertificate: true,
          subject: { commonName: `${name} Redis CA`, organization: "redis-stack" },
          validityPeriodHours: 10 * 365 * 24,
          allowedUses: ["certSigning", "crlSigning"],
        },
        child,
      );
      const publicParam = (id: string, paramName: string, value: pulumi.Input<string>, description: string) =>
        new aws.ssm.Parameter(
          `${name}-${id}`,
          { name: paramName, type: "String", tier: "Standard", value, description, tags: tags(id) },
          child,
        );
      publicParam("ca-cert", args.ssm.tlsCa, ca.certPem, "CA certificate of the Redis nodes");
      for (const n of nodes) {
        const key = new tls.PrivateKey(`${name}-${n.node.name}-tls`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, child);
        const csr = new tls.CertRequest(
          `${name}-${n.node.name}-tls`,
          { privateKeyPem: key.privateKeyPem, subject: { commonName: n.node.name }, ipAddresses: [n.ip] },
          child,
        );
        const cert = new tls.LocallySignedCert(
          `${name}-${n.node.name}-tls`,
          {
            certRequestPem: csr.certRequestPem,
            caPrivateKeyPem: caKey.privateKeyPem,
            caCertPem: ca.certPem,
            validityPeriodHours: 2 * 365 * 24,
            earlyRenewalHours: 30 * 24,
            allowedUses: ["digitalSignature", "keyEncipherment", "serverAuth", "clientAuth"],
          },
          child,
        );
        secureParam(
          `${n.node.name}-tls-key`,
          args.ssm.tlsKey(n.node.name),
          key.privateKeyPem,
          `TLS private key of ${n.node.name}`,
        );
        publicParam(
          `${n.node.name}-tls-cert`,
          args.ssm.tlsCert(n.node.name),
          cert.certPem,
          `TLS certificate of ${n.node.name}`,
        );
      }
    }

    // Instance role: SSM Session Manager (no SSH) and read access to this stack's parameters only.
    const role = new aws.iam.Role(
      `${name}-node`,
      {
        assumeRolePolicy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
        }),
        tags: tags("node"),
      },
      child,
    );
    new aws.iam.RolePolicyAttachment(
      `${name}-ssm-core`,
      { role: role.name, policyArn: "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" },
      child,
    );
    const identity = aws.getCallerIdentityOutput({}, child);
    new aws.iam.RolePolicy(
      `${name}-read-params`,
      {
        role: role.id,
        policy: identity.accountId.apply((account) =>
          JSON.stringify({
            Version: "2012-10-17",
            Statement: [
              {
                Effect: "Allow",
                Action: ["ssm:GetParameter", "ssm:GetParameters"],
                Resource: `arn:aws:ssm:${s.region}:${account}:parameter${args.ssm.prefix}/*`,
              },
            ],
          }),
        ),
      },
      child,
    );
    const profile = new aws.iam.InstanceProfile(`${name}-node`, { role: role.name, tags: tags("node") }, child);

    const ami = aws.ec2.getAmiOutput(
      {
        owners: [DEBIAN_AMI_OWNER],
        mostRecent: true,
        filters: [
          { name: "name", values: [`debian-12-${s.architecture === "arm64" ? "arm64" : "amd64"}-*`] },
          { name: "architecture", values: [s.architecture] },
          { name: "virtualization-type", values: ["hvm"] },
        ],
      },
      child,
    );

    const spec: ClusterSpec = {
      nodeTimeoutMs: s.nodeTimeoutMs,
      maxmemoryBytes: s.maxmemoryBytes,
      maxmemoryPolicy: args.maxmemoryPolicy,
      persistence: args.persistence,
      region: s.region,
      ssm: args.ssm,
    };

    const instances = nodes.map((n) => {
      const nodeName = n.node.name;
      const subnetId = subnetIds[n.node.azIndex];
      const az = azNames[n.node.azIndex];
      // The ENI holds the node's fixed address; a replaced instance gets it back, and with it its identity.
      const eni = new aws.ec2.NetworkInterface(
        `${name}-${nodeName}`,
        {
          subnetId,
          privateIps: [n.ip],
          securityGroups: [redisSg.id],
          description: `${nodeName} (${n.node.role}, shard ${n.node.shard})`,
          tags: tags(nodeName),
        },
        child,
      );
      const volume = new aws.ebs.Volume(
        `${name}-${nodeName}-data`,
        { availabilityZone: az, size: s.dataVolumeGb, type: "gp3", encrypted: true, tags: tags(`${nodeName}-data`) },
        child,
      );
      const userData = volume.id.apply((volumeId) =>
        encodeUserData(renderNodeUserData(spec, nodes, n, volumeId, args.tls)),
      );
      const instance = new aws.ec2.Instance(
        `${name}-${nodeName}`,
        {
          ami: ami.id,
          instanceType: s.instanceType,
          iamInstanceProfile: profile.name,
          primaryNetworkInterface: { networkInterfaceId: eni.id },
          metadataOptions: { httpTokens: "required", httpEndpoint: "enabled", httpPutResponseHopLimit: 1 },
          rootBlockDevice: { encrypted: true, volumeType: "gp3", volumeSize: 16, deleteOnTermination: true },
          // gzip + base64: cloud-init unpacks it; keeps 3 x 3 clusters' scripts under EC2's 16 KB limit.
          userDataBase64: userData,
          userDataReplaceOnChange: false,
          tags: { ...tags(nodeName), "redis-stack:role": n.node.role, "redis-stack:shard": String(n.node.shard) },
        },
        // The ENI can back one instance at a time; new AMIs and config changes roll out by the runbook
        // (one node at a time), never by Pulumi stopping every node at once.
        { ...child, deleteBeforeReplace: true, ignoreChanges: ["ami", "userDataBase64"] },
      );
      new aws.ec2.VolumeAttachment(
        `${name}-${nodeName}-data`,
        { deviceName: "/dev/sdf", volumeId: volume.id, instanceId: instance.id, stopInstanceBeforeDetaching: true },
        child,
      );
      return { name: nodeName, instanceId: instance.id };
    });

    const alarms = new NodeAlarms(
      `${name}-alarms`,
      { region: s.region, alertEmail: args.alertEmail, instances, tags: args.tags },
      child,
    );

    this.connection = connectionOutputs({
      target: "ec2",
      nodes: nodes.map((n) => `${n.ip}:${n.port}`),
      username: APP_USER,
      password: appPassword.result,
      tls: args.tls,
      clusterMode: true,
      caCertificate: ca?.certPem,
      client: args.client,
    });
    this.clientSecurityGroupId = clientSg.id;
    this.alertTopicArn = alarms.topicArn;
    this.registerOutputs({
      connection: this.connection,
      clientSecurityGroupId: this.clientSecurityGroupId,
      alertTopicArn: this.alertTopicArn,
    });
  }
}
