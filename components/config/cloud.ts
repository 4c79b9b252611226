/**
 * The Redis Cloud target's keys: subscription sizing, payment, networking, backups, CA bundle and peering.
 */
import { parseAlarmThresholds, parseBackupRetentionDays } from "./ec2";
import { Reader } from "./reader";
import { CloudPeeringSettings, CloudSettings, Persistence } from "./settings";
import { abbreviate, caBundleProblem, cidrsOverlap, isCidr } from "./values";

/** The backup intervals Redis Cloud offers (hours). */
export const BACKUP_INTERVAL_HOURS = [1, 2, 4, 6, 12, 24] as const;

/**
 * Where Redis Cloud says how to download its CA bundle (`redis_ca.pem`): the provider does not export the
 * CA, so `cloudCaCertificate` carries it. Cited by the config problem and the README.
 */
export const REDIS_CLOUD_CA_DOCS =
  "https://redis.io/docs/latest/operate/rc/security/database-security/tls-ssl/#download-certificates";

/** The peering config keys: all of them or none (a VPC peering between the subscription and the app's VPC). */
export const CLOUD_PEER_KEYS = [
  "cloudPeerVpcId",
  "cloudPeerVpcCidrs",
  "cloudPeerSubnetIds",
  "cloudPeerRouteTableIds",
] as const;

export function parseCloud(
  r: Reader,
  persistence: Persistence,
  tls: boolean,
  allowedCidrs: string[],
  awsRegion: string | undefined,
): CloudSettings {
  const region = r.get("cloudRegion") ?? "us-east-1";
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) {
    r.fail("cloudRegion", region, "is not an AWS region name", "pulumi config set cloudRegion us-east-1");
  }
  const memoryGb = r.number(
    "cloudMemoryGb",
    1,
    (n) => n > 0 && n <= 10000,
    "must be a memory size in GB greater than 0",
    "pulumi config set cloudMemoryGb 1",
  );
  const throughputOps = r.int(
    "cloudThroughputOps",
    1000,
    100,
    10000000,
    "operations per second the database is sized for",
  );
  const paymentMethod = r.oneOf("cloudPaymentMethod", ["credit-card", "marketplace"] as const, "credit-card");
  const paymentMethodId = r.get("cloudPaymentMethodId");
  const paymentCardLast4 = r.get("cloudPaymentCardLast4");
  if (paymentMethod === "credit-card" && paymentMethodId === undefined && paymentCardLast4 === undefined) {
    r.fail(
      "cloudPaymentMethodId",
      undefined,
      "Redis Cloud needs a payment method for a credit-card subscription",
      "pulumi config set cloudPaymentCardLast4 <last 4 digits of the card on your Redis Cloud account> (or cloudPaymentMethodId <id>, or cloudPaymentMethod marketplace)",
    );
  }
  if (paymentCardLast4 !== undefined && !/^\d{4}$/.test(paymentCardLast4)) {
    r.fail(
      "cloudPaymentCardLast4",
      paymentCardLast4,
      "must be exactly 4 digits",
      "pulumi config set cloudPaymentCardLast4 1234",
    );
  }
  if (paymentMethodId !== undefined && !/^\d+$/.test(paymentMethodId)) {
    r.fail(
      "cloudPaymentMethodId",
      paymentMethodId,
      "must be the numeric id Redis Cloud shows for the card",
      "copy it from Account settings > Payment methods, or use cloudPaymentCardLast4",
    );
  }
  const deploymentCidr = r.get("cloudDeploymentCidr") ?? "10.0.0.0/24";
  if (!isCidr(deploymentCidr) || !deploymentCidr.endsWith("/24")) {
    r.fail(
      "cloudDeploymentCidr",
      deploymentCidr,
      "must be a /24 CIDR block (Redis Cloud's requirement) that does not overlap your VPCs",
      "pulumi config set cloudDeploymentCidr 10.0.0.0/24",
    );
  }
  const multiAz = r.bool("cloudMultiAz", true);
  const backupPath = r.get("cloudBackupPath");
  if (backupPath !== undefined && !/^(s3|gs):\/\/[a-z0-9][a-z0-9.-]+[a-z0-9](\/.*)?$/.test(backupPath)) {
    r.fail(
      "cloudBackupPath",
      backupPath,
      "must be an s3:// (or gs://) URI",
      "pulumi config set cloudBackupPath s3://my-bucket/redis-backups",
    );
  }
  // Without cloudBackupPath, RDB persistence gets a bucket the stack creates (components/cloud/backups.ts).
  const backupRetentionDays = parseBackupRetentionDays(r);
  const backupIntervalHours = r.number(
    "cloudBackupIntervalHours",
    6,
    (n) => (BACKUP_INTERVAL_HOURS as readonly number[]).includes(n),
    `must be one of ${BACKUP_INTERVAL_HOURS.join(", ")}`,
    "pulumi config set cloudBackupIntervalHours 6",
  );
  const clusterApi = r.bool("cloudClusterApi", false);
  const caCertificate = parseCloudCa(r, tls);
  const peering = parsePeering(r, { region, deploymentCidr, allowedCidrs, awsRegion });
  if (allowedCidrs.length === 0) {
    r.fail(
      "allowedCidrs",
      undefined,
      "a Redis Cloud database accepts connections from any address unless its source IPs are listed",
      "pulumi config set --path 'allowedCidrs[0]' <your app network, e.g. 203.0.113.0/24>",
    );
  }
  return {
    region,
    memoryGb,
    throughputOps,
    paymentMethod,
    paymentMethodId,
    paymentCardLast4,
    deploymentCidr,
    multiAz,
    backupPath,
    backupIntervalHours,
    backupRetentionDays,
    clusterApi,
    caCertificate,
    peering,
    alarms: parseAlarmThresholds(r),
  };
}

/**
 * cloudCaCertificate: Redis Cloud's CA bundle, which apps need to verify the database's certificate
 * (REDIS_CA_PEM) and the provider does not export. Required with TLS; checked as PEM whenever set.
 */
function parseCloudCa(r: Reader, tls: boolean): string | undefined {
  const fix = 'pulumi config set cloudCaCertificate -- "$(cat redis_ca.pem)"';
  const pem = r.get("cloudCaCertificate");
  if (pem === undefined) {
    if (tls)
      r.fail(
        "cloudCaCertificate",
        undefined,
        "TLS is on, and apps verify the database's certificate against Redis Cloud's CA (REDIS_CA_PEM), which the " +
          "rediscloud provider does not export: download the CA bundle (redis_ca.pem) from the Redis Cloud console " +
          `as ${REDIS_CLOUD_CA_DOCS} describes`,
        `${fix} (or pulumi config set tls false)`,
      );
    return undefined;
  }
  const problem = caBundleProblem(pem);
  if (problem !== undefined) {
    r.fail(
      "cloudCaCertificate",
      abbreviate(pem),
      `${problem}; it must be Redis Cloud's CA bundle (redis_ca.pem, ${REDIS_CLOUD_CA_DOCS})`,
      fix,
    );
    return undefined;
  }
  return pem.trim() + "\n";
}

/** How to set each peering key, for the problem that names it missing. */
const PEER_KEY_FIX: Record<(typeof CLOUD_PEER_KEYS)[number], string> = {
  cloudPeerVpcId: "pulumi config set cloudPeerVpcId vpc-0123456789abcdef0 (the VPC your apps run in)",
  cloudPeerVpcCidrs: "pulumi config set --path 'cloudPeerVpcCidrs[0]' 10.60.0.0/16 (that VPC's CIDR block)",
  cloudPeerSubnetIds:
    "pulumi config set --path 'cloudPeerSubnetIds[0]' subnet-0123456789abcdef0 (the subnets your apps run in)",
  cloudPeerRouteTableIds:
    "pulumi config set --path 'cloudPeerRouteTableIds[0]' rtb-0123456789abcdef0 (the route tables of those subnets)",
};

/** /24 blocks offered as a deployment CIDR when the configured one overlaps the peered VPC. */
const SPARE_DEPLOYMENT_CIDRS = ["10.99.0.0/24", "10.254.0.0/24", "172.31.254.0/24", "192.168.254.0/24"];

/**
 * The cloudPeer* keys: all four or none. The peered VPC's CIDRs must not overlap the subscription's
 * deployment CIDR, must be allowed in by allowedCidrs (the database's source-IP list), and the AWS side
 * (accepter, routes) is created in aws:region, which must be the subscription's region.
 */
function parsePeering(
  r: Reader,
  c: { region: string; deploymentCidr: string; allowedCidrs: string[]; awsRegion: string | undefined },
): CloudPeeringSettings | undefined {
  const nonEmpty = (list: string[] | undefined) => (list !== undefined && list.length > 0 ? list : undefined);
  const given = {
    cloudPeerVpcId: r.get("cloudPeerVpcId"),
    cloudPeerVpcCidrs: nonEmpty(r.list("cloudPeerVpcCidrs")),
    cloudPeerSubnetIds: nonEmpty(r.list("cloudPeerSubnetIds")),
    cloudPeerRouteTableIds: nonEmpty(r.list("cloudPeerRouteTableIds")),
  };
  const set = CLOUD_PEER_KEYS.filter((k) => given[k] !== undefined);
  if (set.length === 0) return undefined;
  for (const key of CLOUD_PEER_KEYS.filter((k) => given[k] === undefined)) {
    r.fail(
      key,
      undefined,
      `VPC peering needs ${CLOUD_PEER_KEYS.join(", ")} together, and only ${set.join(", ")} ${set.length === 1 ? "is" : "are"} set`,
      `${PEER_KEY_FIX[key]}; or, for no peering, pulumi config rm ${set.join(" / ")}`,
    );
  }
  const { cloudPeerVpcId: vpcId, cloudPeerVpcCidrs: vpcCidrs } = given;
  const { cloudPeerSubnetIds: subnetIds, cloudPeerRouteTableIds: routeTableIds } = given;
  if (vpcId !== undefined && !/^vpc-[0-9a-f]+$/.test(vpcId))
    r.fail("cloudPeerVpcId", vpcId, "is not a VPC id", PEER_KEY_FIX.cloudPeerVpcId);
  for (const id of subnetIds ?? [])
    if (!/^subnet-[0-9a-f]+$/.test(id))
      r.fail("cloudPeerSubnetIds", id, "is not a subnet id", PEER_KEY_FIX.cloudPeerSubnetIds);
  for (const id of routeTableIds ?? [])
    if (!/^rtb-[0-9a-f]+$/.test(id))
      r.fail("cloudPeerRouteTableIds", id, "is not a route table id", PEER_KEY_FIX.cloudPeerRouteTableIds);
  const deploymentOk = isCidr(c.deploymentCidr);
  for (const cidr of vpcCidrs ?? []) {
    if (!isCidr(cidr)) {
      r.fail(
        "cloudPeerVpcCidrs",
        cidr,
        "is not an IPv4 CIDR block like 10.60.0.0/16 (no host bits set)",
        PEER_KEY_FIX.cloudPeerVpcCidrs,
      );
      continue;
    }
    if (deploymentOk && cidrsOverlap(cidr, c.deploymentCidr)) {
      const spare = SPARE_DEPLOYMENT_CIDRS.find((s) =>
        (vpcCidrs ?? []).every((v) => !isCidr(v) || !cidrsOverlap(s, v)),
      );
      r.fail(
        "cloudPeerVpcCidrs",
        cidr,
        `overlaps cloudDeploymentCidr ${c.deploymentCidr}, the CIDR of Redis Cloud's VPC: peered networks must not ` +
          "overlap (AWS refuses to peer overlapping VPCs, and the routes would be ambiguous)",
        `choose a cloudDeploymentCidr outside your VPC before the subscription exists, e.g. pulumi config set ` +
          `cloudDeploymentCidr ${spare ?? "<a /24 outside your VPC>"} (changing it later replaces the subscription and its data)`,
      );
    }
  }
  // The database's source-IP list applies to peered apps too: at least part of the VPC must be in it
  // (listing only the apps' subnets is a deliberate narrowing, so one overlap is enough).
  const peerCidrs = (vpcCidrs ?? []).filter(isCidr);
  const allowed = c.allowedCidrs.filter(isCidr);
  if (allowed.length > 0 && peerCidrs.length > 0 && !peerCidrs.some((p) => allowed.some((a) => cidrsOverlap(a, p)))) {
    r.fail(
      "allowedCidrs",
      c.allowedCidrs.join(","),
      `lets none of the peered VPC (${peerCidrs.join(", ")}) in: the database accepts only the source IPs listed here, peered apps included`,
      `pulumi config set --path 'allowedCidrs[${c.allowedCidrs.length}]' ${peerCidrs[0]}`,
    );
  }
  if (c.awsRegion !== c.region) {
    r.fail(
      "aws:region",
      c.awsRegion,
      `peering creates its AWS side (the accepter and the routes) in aws:region, and the peered VPC must be in the subscription's region (cloudRegion ${c.region})`,
      `pulumi config set aws:region ${c.region}`,
    );
  }
  if (vpcId === undefined || vpcCidrs === undefined || subnetIds === undefined || routeTableIds === undefined)
    return undefined;
  return { vpcId, vpcCidrs, subnetIds, routeTableIds };
}
