/**
 * Redis Cloud config that cannot give apps a working contract fails the program itself (what `pulumi
 * preview` runs) before any resource or lookup: the CA apps verify against, and a VPC peering that is partial
 * or overlaps the subscription's network. Without TLS there is no CA to hand out, and the env says so by
 * leaving REDIS_CA_PEM out.
 */
import * as pulumi from "@pulumi/pulumi";
import { REDIS_CLOUD_CA_DOCS } from "../../components/config/cloud";
import { byType, runStack, unwrapSecrets, valueOf, cloudResources } from "./support/stackHarness";

const CA_KEY = "redis-stack:cloudCaCertificate";
const PEER = {
  "aws:region": "us-east-1",
  "redis-stack:allowedCidrs": '["10.60.0.0/16"]',
  "redis-stack:cloudPeerVpcId": "vpc-0a9b8c7d6e5f40312",
  "redis-stack:cloudPeerVpcCidrs": '["10.60.0.0/16"]',
  "redis-stack:cloudPeerSubnetIds": '["subnet-0a1b2c3d4e5f60001"]',
  "redis-stack:cloudPeerRouteTableIds": '["rtb-0a1b2c3d4e5f60001"]',
};

/** Runs dev with the overrides; expects a config failure before anything happened, returns its message. */
async function failure(overrides: Record<string, string | undefined>): Promise<string> {
  const run = await runStack("dev", overrides);
  expect(run.error).toBeDefined();
  expect(cloudResources(run)).toEqual([]);
  expect(run.calls).toEqual([]);
  return String(run.error?.message);
}

test("TLS without Redis Cloud's CA: names the key, what it is, where to download it and the command", async () => {
  const message = await failure({ [CA_KEY]: undefined });
  expect(message).toMatch(/^invalid stack configuration \(1 problem\):/);
  expect(message).toContain("redis-stack:cloudCaCertificate = (not set): TLS is on");
  expect(message).toContain(REDIS_CLOUD_CA_DOCS);
  expect(message).toContain('fix: pulumi config set cloudCaCertificate -- "$(cat redis_ca.pem)"');
});

test("a cloudCaCertificate that is not PEM", async () => {
  const message = await failure({ [CA_KEY]: "/home/me/redis_ca.pem" });
  expect(message).toContain('redis-stack:cloudCaCertificate = "/home/me/redis_ca.pem": is not PEM text');
  expect(message).toContain('fix: pulumi config set cloudCaCertificate -- "$(cat redis_ca.pem)"');
});

test("a partial peering names the missing keys", async () => {
  const message = await failure({
    ...PEER,
    "redis-stack:cloudPeerSubnetIds": undefined,
    "redis-stack:cloudPeerRouteTableIds": undefined,
  });
  expect(message).toMatch(/^invalid stack configuration \(2 problems\):/);
  expect(message).toContain("redis-stack:cloudPeerSubnetIds = (not set): VPC peering needs");
  expect(message).toContain("redis-stack:cloudPeerRouteTableIds = (not set): VPC peering needs");
  expect(message).toContain("fix: pulumi config set --path 'cloudPeerRouteTableIds[0]' rtb-");
});

test("a peered VPC overlapping the subscription's deployment CIDR", async () => {
  const message = await failure({
    ...PEER,
    "redis-stack:cloudPeerVpcCidrs": '["10.0.0.0/16"]',
    "redis-stack:allowedCidrs": '["10.0.0.0/16"]',
  });
  expect(message).toContain('redis-stack:cloudPeerVpcCidrs = "10.0.0.0/16": overlaps cloudDeploymentCidr 10.0.0.0/24');
  expect(message).toContain("fix: choose a cloudDeploymentCidr outside your VPC");
});

test("without TLS: no CA needed, none handed out, and the URL is redis://", async () => {
  const run = await runStack("dev", { "redis-stack:tls": "false", [CA_KEY]: undefined });
  if (run.error) throw run.error;
  const o = run.outputs;
  if (!o) throw new Error("no outputs");
  const env = await valueOf(o.env);
  expect("REDIS_CA_PEM" in env).toBe(false);
  expect(env.REDIS_TLS).toBe("false");
  expect(env.REDIS_URL).toMatch(/^redis:\/\//);
  expect(await valueOf(o.caCertificate)).toBe("");
  expect(await pulumi.isSecret(o.env)).toBe(true);
  const db = byType(run.resources, "rediscloud:index/subscriptionDatabase:SubscriptionDatabase");
  expect((unwrapSecrets(db[0].inputs) as { enableTls: boolean }).enableTls).toBe(false);
});
