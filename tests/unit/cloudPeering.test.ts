/**
 * The dev stack (Redis Cloud) peered with the app's VPC, under Pulumi mocks: Redis Cloud requests the
 * peering (SubscriptionPeering), AWS accepts it in the account of the stack's credentials, every route table
 * of the app's subnets gets a route to the subscription's deployment CIDR through it, and the contract points
 * at the database's private endpoint. The outputs tell an app deploy where to sit (vpcId, subnetIds).
 */
import * as pulumi from "@pulumi/pulumi";
import { stackConfig } from "../../lab/stackFiles";
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
import {
  checkInputsAgainstSchema,
  checkInputsAgainstValidation,
  FULL_SCHEMA_RELATIVE_PATH,
  loadSchema,
  loadValidation,
} from "./rediscloudSchema";

const PEERING = "rediscloud:index/subscriptionPeering:SubscriptionPeering";
const ACCEPTER = "aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter";
const ROUTE = "aws:ec2/route:Route";
const VPC = "vpc-0a9b8c7d6e5f40312";
const SUBNETS = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"];
const ROUTE_TABLES = ["rtb-0a1b2c3d4e5f60001", "rtb-0a1b2c3d4e5f60002"];
const PRIVATE_ENDPOINT = FAKE.endpoint.replace("redis-", "internal.redis-");
const CLOUD_CA = stackConfig("dev")["redis-stack:cloudCaCertificate"];

let run: RunResult;
const inputs = (r: Registered) => unwrapSecrets(r.inputs) as Record<string, unknown>;
const only = (type: string) => {
  const found = byType(run.resources, type);
  expect(found).toHaveLength(1);
  return found[0];
};

beforeAll(async () => {
  run = await runStack("dev", {
    "aws:region": "us-east-1",
    "redis-stack:allowedCidrs": '["10.60.0.0/16"]',
    "redis-stack:cloudPeerVpcId": VPC,
    "redis-stack:cloudPeerVpcCidrs": '["10.60.0.0/16", "10.61.0.0/16"]',
    "redis-stack:cloudPeerSubnetIds": JSON.stringify(SUBNETS),
    "redis-stack:cloudPeerRouteTableIds": JSON.stringify(ROUTE_TABLES),
    // An explicit provider: the peering must reach Redis Cloud through it, as the subscription does.
    "redis-stack:rediscloudApiKey": "key",
    "redis-stack:rediscloudSecretKey": "secret",
  });
  if (run.error) throw run.error;
});

test("the peering component holds one Redis Cloud peering, one AWS accepter and a route per route table", () => {
  expect(countByType(run.resources)).toMatchObject({
    "redis-stack:cloud:RedisCloudPeering": 1,
    [PEERING]: 1,
    [ACCEPTER]: 1,
    [ROUTE]: 2,
  });
  // Its account is the stack's AWS credentials' (they accept and route there).
  expect(run.calls).toContain("aws:index/getCallerIdentity:getCallerIdentity");
});

test("Redis Cloud requests the peering of the subscription with the app's VPC, in the subscription's region", () => {
  const request = only(PEERING);
  expect(inputs(request)).toEqual({
    subscriptionId: FAKE.subscriptionId,
    providerName: "AWS",
    region: "us-east-1",
    awsAccountId: "123456789012",
    vpcId: VPC,
    vpcCidrs: ["10.60.0.0/16", "10.61.0.0/16"],
  });
  expect(checkInputsAgainstSchema(loadSchema(FULL_SCHEMA_RELATIVE_PATH), PEERING, inputs(request))).toEqual([]);
  expect(checkInputsAgainstValidation(loadValidation(), PEERING, inputs(request))).toEqual([]);
  // Through the configured Redis Cloud provider, like the subscription: inherited down the component tree.
  expect(request.provider).toMatch(/::pulumi:providers:rediscloud::rediscloud::/);
  expect(request.provider).toBe(only("rediscloud:index/subscription:Subscription").provider);
});

test("AWS accepts the connection Redis Cloud requested, and each route table sends the deployment CIDR through it", () => {
  expect(inputs(only(ACCEPTER))).toMatchObject({
    vpcPeeringConnectionId: FAKE.peeringConnectionId,
    autoAccept: true,
    tags: { Name: "redis-dev-peering", "redis-stack:stack": "dev" },
  });
  const routes = byType(run.resources, ROUTE);
  expect(routes.map((r) => r.name).sort()).toEqual(ROUTE_TABLES.map((t) => `redis-dev-peering-${t}`));
  expect(routes.map(inputs).sort((a, b) => String(a.routeTableId).localeCompare(String(b.routeTableId)))).toEqual(
    ROUTE_TABLES.map((routeTableId) => ({
      routeTableId,
      destinationCidrBlock: "10.0.0.0/24", // cloudDeploymentCidr in Pulumi.dev.yaml
      vpcPeeringConnectionId: FAKE.peeringConnectionId,
    })),
  );
});

test("the contract points at the private endpoint; the allowlist still applies", async () => {
  const o = run.outputs;
  if (!o) throw new Error("no outputs");
  expect(await valueOf(o.nodes)).toEqual([PRIVATE_ENDPOINT]);
  const env = await valueOf(o.env);
  expect(env.REDIS_URL).toBe(`rediss://default:${FAKE.password("redis-dev-password")}@${PRIVATE_ENDPOINT}`);
  expect(env.REDIS_CLUSTER_NODES).toBe(PRIVATE_ENDPOINT);
  expect(env.REDIS_CA_PEM).toBe(CLOUD_CA);
  expect(await pulumi.isSecret(o.env)).toBe(true);
  const db = inputs(only("rediscloud:index/subscriptionDatabase:SubscriptionDatabase"));
  expect(db.sourceIps).toEqual(["10.60.0.0/16"]);
});

test("outputs: the peered VPC and the app's subnets, plain; no client security group", async () => {
  const o = run.outputs;
  if (!o?.vpcId || !o.subnetIds) throw new Error("no vpcId/subnetIds outputs");
  expect(await valueOf(o.vpcId)).toBe(VPC);
  expect(await valueOf(o.subnetIds)).toEqual(SUBNETS);
  expect(await pulumi.isSecret(o.vpcId)).toBe(false);
  expect(await pulumi.isSecret(o.subnetIds)).toBe(false);
  expect(o.clientSecurityGroupId).toBeUndefined();
});
