/**
 * The library inside an app's own program (examples/app-with-cache) under Pulumi mocks: the app creates a
 * Redis Cluster (`RedisEc2Cluster("cache")`) and runs its service in the cluster's VPC, let in by its client
 * security group, with the cluster's contract as its environment and the password only in a SecureString.
 * The next update finds the cluster's deployment in the program's outputs and refuses what a running
 * cluster cannot take, naming the argument.
 */
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import Ajv2020 from "ajv/dist/2020";
import * as pulumi from "@pulumi/pulumi";
import appWithCache from "../../examples/app-with-cache";
import { byType, FAKE, runProgram, unwrapSecrets, valueOf } from "./support/stackHarness";

const ROOT = path.resolve(__dirname, "../..");
const EXAMPLE = path.join(ROOT, "examples/app-with-cache");
const PROJECT = (yaml.load(fs.readFileSync(path.join(EXAMPLE, "Pulumi.yaml"), "utf8")) as { name: string }).name;
const IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop/api@sha256:" + "ab".repeat(32);
const CONFIG = { [`${PROJECT}:image`]: IMAGE, "aws:region": "us-east-1" };

type Outputs = Awaited<ReturnType<typeof appWithCache>>;
const example = (deployedOutputs: Record<string, unknown> = {}, config: Record<string, string> = {}) =>
  runProgram<Outputs>(() => appWithCache(), {
    project: PROJECT,
    stack: "dev",
    config: { ...CONFIG, ...config },
    deployedOutputs,
  });

let run: Awaited<ReturnType<typeof example>>;
beforeAll(async () => {
  run = await example();
  if (run.error) throw run.error;
});

const inputs = (type: string) =>
  byType(run.resources, type).map((r) => unwrapSecrets(r.inputs) as Record<string, unknown>);

test("the program's Pulumi.yaml is valid against Pulumi's project schema", () => {
  const schema = JSON.parse(fs.readFileSync(path.join(ROOT, "reference/pulumi/project.schema.json"), "utf8")) as object;
  const validate = new Ajv2020({ strict: false, allErrors: true }).compile(schema);
  expect(validate(yaml.load(fs.readFileSync(path.join(EXAMPLE, "Pulumi.yaml"), "utf8")))).toBe(true);
});

test("the cache is a cluster of its own under its component, named after it", () => {
  const instances = byType(run.resources, "aws:ec2/instance:Instance");
  expect(instances).toHaveLength(6);
  for (const i of instances)
    expect(i.urn).toMatch(
      /^urn:pulumi:dev::shop-api::redis-stack:ec2:RedisCluster\$aws:ec2\/instance:Instance::cache-shard/,
    );
  // The app chose LFU eviction; the desired settings every node applies say so.
  const settings = inputs("aws:ssm/parameter:Parameter").find((p) => String(p.name).endsWith("/settings"));
  expect(String(settings?.value)).toContain("maxmemory-policy allkeys-lfu");
  expect(String(settings?.name)).toBe("/shop-api/dev-cache/settings");
});

test("the service runs in the cluster's private subnets with its client group, the contract as environment", async () => {
  const [service] = inputs("aws:ecs/service:Service");
  const network = service.networkConfiguration as { subnets: string[]; securityGroups: string[] };
  const o = run.outputs;
  if (!o) throw new Error("no outputs");
  expect(network.subnets).toEqual(await valueOf(o.cache.subnetIds));
  expect(network.securityGroups).toContain(await valueOf(o.cache.clientSecurityGroupId));
  const [task] = inputs("aws:ecs/taskDefinition:TaskDefinition");
  const containers = JSON.parse(String(task.containerDefinitions)) as Array<{
    environment: { name: string; value: string }[];
    secrets: { name: string; valueFrom: string }[];
  }>;
  const env = Object.fromEntries(containers[0].environment.map((e) => [e.name, e.value]));
  expect(env.REDIS_CLUSTER_MODE).toBe("true");
  expect(env.REDIS_CLUSTER_NODES.split(",")).toEqual(await valueOf(o.cache.nodes));
  expect(containers[0].secrets.map((s) => s.name)).toEqual(["REDIS_URL"]);
  // The app's password reaches the task only through the SecureString.
  expect(String(task.containerDefinitions)).not.toContain(FAKE.password("cache-app-password"));
  const secureStrings = inputs("aws:ssm/parameter:Parameter").filter((p) => p.type === "SecureString");
  expect(secureStrings.some((p) => String(p.value).includes(FAKE.password("cache-app-password")))).toBe(true);
  expect(await pulumi.isSecret(o.cache.redisUrl)).toBe(true);
  expect((await valueOf(o.cache.deployment)).component).toBe("cache");
});

test("the next update reads the cluster's deployment from the program's outputs and refuses a replica change", async () => {
  const deployment = await valueOf(run.outputs?.cache.deployment ?? pulumi.output(undefined as never));
  const changed = await example({ cache: { deployment: { ...deployment, replicasPerShard: 2 } } });
  expect(String(changed.error?.message)).toMatch(
    /invalid arguments of RedisEc2Cluster "cache"[\s\S]*replicasPerShard = "1": the deployed cluster runs 2 replica\(s\)[\s\S]*fix: replicasPerShard: 2/,
  );
});
