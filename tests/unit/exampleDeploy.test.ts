/**
 * The example app deploy (examples/app-deploy) under Pulumi mocks: it reads a redis-stack stack through a
 * StackReference whose outputs are marked secret the way the engine marks them, and must hand the app
 * the env map without the password ever reaching the task definition, with least-privilege IAM, in the
 * stack's private subnets and client security group. Its Pulumi.yaml is checked like the root one.
 */
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import Ajv2020 from "ajv/dist/2020";
import * as pulumi from "@pulumi/pulumi";
import deployApp from "../../examples/app-deploy";
import {
  checkTaskSize,
  DEFAULTS,
  ecrRepositoryArn,
  endpointPorts,
  PLAIN_ENV_NAMES,
  PolicyDocument,
  REQUIRED_KEYS,
  SECRET_ENV_NAMES,
  splitEnv,
} from "../../examples/app-deploy/task";
import { connectionContract, ENV_NAMES } from "../../components/contract/connection";
import { CONTRACT_ENV } from "../../client/src/contract";
import { Registered, unwrapSecrets, valueOf } from "./support/stackHarness";

const ROOT = path.resolve(__dirname, "../..");
const EXAMPLE = path.join(ROOT, "examples/app-deploy");
const project = yaml.load(fs.readFileSync(path.join(EXAMPLE, "Pulumi.yaml"), "utf8")) as {
  name: string;
  config: Record<string, { type: string; default?: unknown; description?: string }>;
};
const PROJECT = project.name;

const REDIS_STACK = "acme/redis-stack/prod";
const IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop/api@sha256:" + "ab".repeat(32);
const ACCOUNT = "123456789012";
const PASSWORD = "Zk8pQ2vX7mW4nR9tL3sY6cB1hJ5dF0gA";
const CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUStackCA\n-----END CERTIFICATE-----\n";
const NODES = ["10.40.0.10:6379", "10.40.1.10:6379", "10.40.2.10:6379"];
const SUBNETS = ["subnet-0a1", "subnet-0b2", "subnet-0c3"];

/** The outputs of an EC2 redis-stack stack, as `pulumi stack output --json --show-secrets` prints them. */
const ec2Outputs = {
  target: "ec2",
  redisUrl: `rediss://app:${PASSWORD}@${NODES[0]}`,
  env: {
    REDIS_URL: `rediss://app:${PASSWORD}@${NODES[0]}`,
    REDIS_CLUSTER_MODE: "true",
    REDIS_CLUSTER_NODES: NODES.join(","),
    REDIS_TLS: "true",
    REDIS_MAX_RETRIES: "10",
    REDIS_CONNECT_TIMEOUT: "5000",
    REDIS_CA_PEM: CA_PEM,
  },
  nodes: NODES,
  vpcId: "vpc-0redis",
  subnetIds: SUBNETS,
  clientSecurityGroupId: "sg-0client",
};
const CLOUD_ENDPOINT = "redis-12345.c1.us-east-1-2.ec2.cloud.redislabs.com:12345";
/** A Redis Cloud stack: no client security group. */
const cloudOutputs = {
  target: "cloud",
  redisUrl: `rediss://default:${PASSWORD}@${CLOUD_ENDPOINT}`,
  env: {
    REDIS_URL: `rediss://default:${PASSWORD}@${CLOUD_ENDPOINT}`,
    REDIS_CLUSTER_MODE: "false",
    REDIS_CLUSTER_NODES: CLOUD_ENDPOINT,
    REDIS_TLS: "true",
    REDIS_MAX_RETRIES: "10",
    REDIS_CONNECT_TIMEOUT: "5000",
  },
  nodes: [CLOUD_ENDPOINT],
  vpcId: "vpc-0app",
  subnetIds: SUBNETS,
};
/** What the engine lists in a StackReference's `secretOutputNames` for a redis-stack stack. */
const SECRET_OUTPUTS = ["redisUrl", "env"];

const secretEnvelope = (value: unknown) => ({
  [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig,
  value,
});
const isSecretEnvelope = (v: unknown): boolean =>
  typeof v === "object" &&
  v !== null &&
  (v as Record<string, unknown>)[pulumi.runtime.specialSigKey] === pulumi.runtime.specialSecretSig;

/**
 * A StackReference's state as the engine returns it (stackReference.js reads `outputs` and
 * `secretOutputNames`): secret outputs wrapped as secrets inside `outputs`, and named.
 */
function stackReferenceState(name: string, outputs: Record<string, unknown>): Record<string, unknown> {
  return {
    name,
    outputs: Object.fromEntries(
      Object.entries(outputs).map(([k, v]) => [k, SECRET_OUTPUTS.includes(k) ? secretEnvelope(v) : v]),
    ),
    secretOutputNames: SECRET_OUTPUTS.filter((k) => k in outputs),
  };
}

function computedState(type: string, name: string, inputs: Record<string, unknown>): Record<string, unknown> {
  const arn = (service: string, resource: string) => `arn:aws:${service}:us-east-1:${ACCOUNT}:${resource}`;
  switch (type) {
    case "aws:ssm/parameter:Parameter":
      return { arn: arn("ssm", `parameter${String(inputs.name)}`), version: 3 };
    case "aws:cloudwatch/logGroup:LogGroup":
      return { arn: arn("logs", `log-group:${String(inputs.name)}`) };
    case "aws:iam/role:Role":
      return { name: `${name}-role`, arn: `arn:aws:iam::${ACCOUNT}:role/${name}-role` };
    case "aws:ecs/cluster:Cluster":
      return { name: `${name}-cluster`, arn: arn("ecs", `cluster/${name}-cluster`) };
    case "aws:ecs/taskDefinition:TaskDefinition":
      return { arn: arn("ecs", `task-definition/${String(inputs.family)}:1`) };
    case "aws:ecs/service:Service":
      return { name: `${name}-service` };
    default:
      return {};
  }
}

interface Run {
  resources: Registered[];
  outputs: { serviceName: string; clusterName: string; logGroupName: string };
  /** The returned outputs that are secret. */
  secretOutputs: string[];
}

/** Runs the example's program against a redis stack with `outputs`; one program run per mocks. */
async function runExample(outputs: Record<string, unknown>): Promise<Run> {
  const resources: Registered[] = [];
  pulumi.runtime.setAllConfig({
    [`${PROJECT}:redisStack`]: REDIS_STACK,
    [`${PROJECT}:image`]: IMAGE,
    "aws:region": "us-east-1",
  });
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        const inputs = args.inputs as Record<string, unknown>;
        resources.push({ type: args.type, name: args.name, inputs });
        if (args.type === "pulumi:pulumi:StackReference")
          return { id: String(inputs.name), state: stackReferenceState(String(inputs.name), outputs) };
        const id = args.type === "aws:ec2/securityGroup:SecurityGroup" ? `sg-0${args.name}` : `${args.name}-id`;
        return { id, state: { ...inputs, ...computedState(args.type, args.name, inputs) } };
      },
      call: (args) => {
        if (args.token === "aws:index/getRegion:getRegion")
          return { id: "us-east-1", name: "us-east-1", region: "us-east-1" };
        throw new Error(`unmocked invoke ${args.token}`);
      },
    },
    PROJECT,
    "prod",
    false,
  );
  const out = deployApp();
  // The service depends on every other resource (directly or through its inputs): once its name is
  // known, everything is registered.
  const [serviceName, clusterName, logGroupName] = await Promise.all([
    valueOf(out.serviceName),
    valueOf(out.clusterName),
    valueOf(out.logGroupName),
  ]);
  const secretOutputs: string[] = [];
  for (const [k, v] of Object.entries(out) as [string, pulumi.Output<unknown>][])
    if (await pulumi.isSecret(v)) secretOutputs.push(k);
  return { resources, outputs: { serviceName, clusterName, logGroupName }, secretOutputs };
}

function only(run: Run, type: string): Registered {
  const found = run.resources.filter((r) => r.type === type);
  expect(found.map((r) => r.name)).toHaveLength(1);
  return found[0];
}

const plain = (r: Registered) => unwrapSecrets(r.inputs) as Record<string, unknown>;

interface ContainerDefinition {
  name: string;
  image: string;
  environment: { name: string; value: string }[];
  secrets: { name: string; valueFrom: string }[];
  dockerLabels: Record<string, string>;
  logConfiguration: { logDriver: string; options: Record<string, string> };
}

/** Every string in `value` that is not inside a secret envelope. */
function plainStrings(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (isSecretEnvelope(value)) return [];
  if (Array.isArray(value)) return value.flatMap(plainStrings);
  if (value && typeof value === "object") return Object.values(value).flatMap(plainStrings);
  return [];
}

describe("pure decisions (task.ts)", () => {
  test("every env name the stack exports or the client reads is classified, REDIS_URL as secret", () => {
    const names = new Set<string>([...ENV_NAMES, ...Object.values(CONTRACT_ENV)]);
    for (const name of names)
      expect({
        name,
        classified: PLAIN_ENV_NAMES.includes(name) || (SECRET_ENV_NAMES as readonly string[]).includes(name),
      }).toEqual({ name, classified: true });
    expect(SECRET_ENV_NAMES).toContain("REDIS_URL");
    expect(PLAIN_ENV_NAMES).not.toContain("REDIS_URL");
  });

  test("splitEnv puts the URL apart and refuses names it does not know, naming them but no value", () => {
    const { plain: p, secret } = splitEnv(ec2Outputs.env, REDIS_STACK);
    expect(secret).toEqual({ REDIS_URL: ec2Outputs.env.REDIS_URL });
    expect(Object.keys(p).sort()).toEqual(
      Object.keys(ec2Outputs.env)
        .filter((n) => n !== "REDIS_URL")
        .sort(),
    );
    const errorOf = (env: Record<string, string>) => {
      try {
        splitEnv(env, REDIS_STACK);
      } catch (e) {
        return (e as Error).message;
      }
      return "no error";
    };
    const unknown = errorOf({ ...ec2Outputs.env, REDIS_ADMIN_URL: `rediss://admin:${PASSWORD}@x:1` });
    expect(unknown).toMatch(/REDIS_ADMIN_URL.*PLAIN_ENV_NAMES or SECRET_ENV_NAMES/);
    expect(unknown).not.toContain(PASSWORD);
    const { REDIS_URL: _url, ...withoutUrl } = ec2Outputs.env;
    expect(errorOf(withoutUrl)).toMatch(/has no REDIS_URL/);
  });

  test("a Sentinel topology's contract passes whole: REDIS_SENTINELS and REDIS_SENTINEL_MASTER plain, the URL secret", () => {
    const env = connectionContract({
      target: "ec2",
      nodes: NODES,
      username: "app",
      password: PASSWORD,
      tls: true,
      caCertificate: CA_PEM,
      clusterMode: false,
      sentinel: { masterName: "redis-stack-prod", sentinels: NODES.map((n) => n.replace(":6379", ":26379")) },
      client: { maxRetries: 10, connectTimeoutMs: 5000 },
    }).env;
    const { plain: p, secret } = splitEnv(env, REDIS_STACK);
    expect(secret).toEqual({ REDIS_URL: env.REDIS_URL });
    expect(p).toMatchObject({
      REDIS_CLUSTER_MODE: "false",
      REDIS_SENTINELS: "10.40.0.10:26379,10.40.1.10:26379,10.40.2.10:26379",
      REDIS_SENTINEL_MASTER: "redis-stack-prod",
    });
  });

  test("ECR images map to their repository's ARN; other registries to none", () => {
    expect(ecrRepositoryArn(IMAGE)).toBe(`arn:aws:ecr:us-east-1:${ACCOUNT}:repository/shop/api`);
    expect(ecrRepositoryArn("210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/app:1.2")).toBe(
      "arn:aws-cn:ecr:cn-north-1:210987654321:repository/app",
    );
    expect(ecrRepositoryArn("ghcr.io/acme/app:1.2")).toBeUndefined();
    expect(ecrRepositoryArn("public.ecr.aws/acme/app:1.2")).toBeUndefined();
  });

  test("the Redis ports come from REDIS_CLUSTER_NODES", () => {
    expect(endpointPorts(CLOUD_ENDPOINT)).toEqual([12345]);
    expect(endpointPorts("10.0.0.1:6379, 10.0.0.2:6379,[fd00::1]:6380")).toEqual([6379, 6380]);
    expect(() => endpointPorts("")).toThrow(/REDIS_CLUSTER_NODES/);
  });

  test("task sizes Fargate refuses fail at preview, naming the key and the fix", () => {
    expect(() => checkTaskSize(256, 512)).not.toThrow();
    expect(() => checkTaskSize(4096, 30720)).not.toThrow();
    expect(() => checkTaskSize(256, 4096)).toThrow(/^memory = 4096: .*512, 1024, 2048.*pulumi config set memory 512/);
    expect(() => checkTaskSize(300, 512)).toThrow(/^cpu = 300: not a Fargate size/);
  });
});

describe("against an EC2 redis stack", () => {
  let run: Run;
  beforeAll(async () => {
    run = await runExample(ec2Outputs);
  });

  test("reads the configured stack through one StackReference", () => {
    expect(plain(only(run, "pulumi:pulumi:StackReference")).name).toBe(REDIS_STACK);
  });

  test("the container gets every plain name with its value, and REDIS_URL only as a secret reference", () => {
    const taskDefinition = only(run, "aws:ecs/taskDefinition:TaskDefinition");
    // Not marked secret: the task definition stays readable in diffs, so it must hold nothing secret.
    expect(isSecretEnvelope(taskDefinition.inputs.containerDefinitions)).toBe(false);
    const json = String(taskDefinition.inputs.containerDefinitions);
    expect(json).not.toContain(PASSWORD);
    expect(json).not.toContain(ec2Outputs.env.REDIS_URL);
    expect(json).not.toContain(encodeURIComponent(PASSWORD));
    const [container, ...others] = JSON.parse(json) as ContainerDefinition[];
    expect(others).toEqual([]);
    expect(container.image).toBe(IMAGE);
    const { REDIS_URL: _url, ...plainEnv } = ec2Outputs.env;
    expect(Object.fromEntries(container.environment.map((e) => [e.name, e.value]))).toEqual(plainEnv);
    expect(container.environment.map((e) => e.name)).not.toContain("REDIS_URL");

    const parameter = only(run, "aws:ssm/parameter:Parameter");
    const parameterArn = `arn:aws:ssm:us-east-1:${ACCOUNT}:parameter/${PROJECT}/prod/REDIS_URL`;
    expect(container.secrets).toEqual([{ name: "REDIS_URL", valueFrom: parameterArn }]);
    // The parameter's version: a changed URL makes a new revision, which replaces the running tasks.
    expect(container.dockerLabels).toEqual({ "secret-version.REDIS_URL": "3" });
    expect(container.logConfiguration).toEqual({
      logDriver: "awslogs",
      options: {
        "awslogs-group": `/ecs/${PROJECT}/prod`,
        "awslogs-region": "us-east-1",
        "awslogs-stream-prefix": "app",
      },
    });
    expect(plain(taskDefinition)).toMatchObject({
      requiresCompatibilities: ["FARGATE"],
      networkMode: "awsvpc",
      cpu: String(DEFAULTS.cpu),
      memory: String(DEFAULTS.memory),
      executionRoleArn: `arn:aws:iam::${ACCOUNT}:role/execution-role`,
    });
    // The app gets no AWS role: it needs none to reach Redis.
    expect(plain(taskDefinition).taskRoleArn).toBeUndefined();
    expect(parameter.inputs.name).toBe(`/${PROJECT}/prod/REDIS_URL`);
  });

  test("the URL lives in an SSM SecureString whose value is secret", () => {
    const parameter = only(run, "aws:ssm/parameter:Parameter");
    expect(parameter.inputs.type).toBe("SecureString");
    expect(isSecretEnvelope(parameter.inputs.value)).toBe(true);
    expect(plain(parameter).value).toBe(ec2Outputs.env.REDIS_URL);
  });

  test("the password appears in no resource input outside a secret, nor in the outputs", () => {
    const leaks = run.resources.filter((r) => plainStrings(r.inputs).some((s) => s.includes(PASSWORD)));
    expect(leaks.map((r) => `${r.type} ${r.name}`)).toEqual([]);
    expect(JSON.stringify(run.outputs)).not.toContain(PASSWORD);
    expect(run.secretOutputs).toEqual([]);
  });

  test("the service runs in the stack's subnets with the client group, without a public IP", () => {
    const service = plain(only(run, "aws:ecs/service:Service"));
    const appGroup = only(run, "aws:ec2/securityGroup:SecurityGroup");
    expect(service).toMatchObject({
      launchType: "FARGATE",
      desiredCount: DEFAULTS.desiredCount,
      taskDefinition: `arn:aws:ecs:us-east-1:${ACCOUNT}:task-definition/${PROJECT}-prod:1`,
      networkConfiguration: {
        subnets: SUBNETS,
        securityGroups: ["sg-0client", `sg-0${appGroup.name}`],
        assignPublicIp: false,
      },
      deploymentCircuitBreaker: { enable: true, rollback: true },
    });
    // The app group sits in the stack's VPC and only opens HTTPS out: the client group reaches Redis.
    expect(plain(appGroup)).toMatchObject({ vpcId: "vpc-0redis" });
    expect(plain(appGroup).ingress ?? []).toEqual([]);
    expect((plain(appGroup).egress as { fromPort: number }[]).map((e) => e.fromPort)).toEqual([443]);
  });

  test("the execution role may read only this app's parameter, write only its log group, pull only its image", () => {
    const role = plain(only(run, "aws:iam/role:Role"));
    expect(JSON.parse(String(role.assumeRolePolicy))).toEqual({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Principal: { Service: "ecs-tasks.amazonaws.com" }, Action: "sts:AssumeRole" }],
    });
    expect(role.managedPolicyArns).toBeUndefined();
    expect(run.resources.filter((r) => r.type === "aws:iam/rolePolicyAttachment:RolePolicyAttachment")).toEqual([]);

    const policy = JSON.parse(String(plain(only(run, "aws:iam/rolePolicy:RolePolicy")).policy)) as PolicyDocument;
    const logGroupArn = `arn:aws:logs:us-east-1:${ACCOUNT}:log-group:/ecs/${PROJECT}/prod`;
    expect(policy.Statement).toEqual([
      {
        Sid: "WriteOwnLogs",
        Effect: "Allow",
        Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
        Resource: [logGroupArn, `${logGroupArn}:log-stream:*`],
      },
      {
        Sid: "ReadOwnSecrets",
        Effect: "Allow",
        Action: ["ssm:GetParameters"],
        Resource: [`arn:aws:ssm:us-east-1:${ACCOUNT}:parameter/${PROJECT}/prod/REDIS_URL`],
      },
      { Sid: "EcrLogin", Effect: "Allow", Action: ["ecr:GetAuthorizationToken"], Resource: "*" },
      {
        Sid: "PullOwnImage",
        Effect: "Allow",
        Action: ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
        Resource: `arn:aws:ecr:us-east-1:${ACCOUNT}:repository/shop/api`,
      },
    ]);
    // "*" only where the action takes no resource; no KMS grant (the aws/ssm key's policy covers SSM).
    const wildcard = policy.Statement.filter((s) =>
      [s.Resource].flat().some((r) => r.endsWith("*") && !r.includes(":log-stream:")),
    );
    expect(wildcard.map((s) => s.Action)).toEqual([["ecr:GetAuthorizationToken"]]);
    expect(policy.Statement.flatMap((s) => s.Action).filter((a) => a.startsWith("kms:") || a.includes("*"))).toEqual(
      [],
    );
  });

  test("logs go to a log group with retention; the outputs name the service and the log group", () => {
    expect(plain(only(run, "aws:cloudwatch/logGroup:LogGroup"))).toMatchObject({
      name: `/ecs/${PROJECT}/prod`,
      retentionInDays: DEFAULTS.logRetentionDays,
    });
    expect(run.outputs).toEqual({
      serviceName: "app-service",
      clusterName: "app-cluster",
      logGroupName: `/ecs/${PROJECT}/prod`,
    });
  });

  // Last in this block: it registers a second StackReference under the same mocks.
  test("the mocked StackReference marks outputs secret the way the engine does (env yes, network no)", async () => {
    const probe = new pulumi.StackReference("probe", { name: REDIS_STACK });
    const secretness = async (name: string) => [name, await pulumi.isSecret(probe.getOutput(name))] as const;
    const names = ["env", "redisUrl", "vpcId", "subnetIds", "clientSecurityGroupId"];
    expect(Object.fromEntries(await Promise.all(names.map(secretness)))).toEqual({
      env: true,
      redisUrl: true,
      vpcId: false,
      subnetIds: false,
      clientSecurityGroupId: false,
    });
    expect(await valueOf(probe.getOutput("subnetIds"))).toEqual(SUBNETS);
  });
});

describe("against a Redis Cloud stack (no clientSecurityGroupId)", () => {
  let run: Run;
  beforeAll(async () => {
    run = await runExample(cloudOutputs);
  });

  test("the task carries only its own group, which opens the endpoint's port out", () => {
    const appGroup = only(run, "aws:ec2/securityGroup:SecurityGroup");
    const service = plain(only(run, "aws:ecs/service:Service"));
    expect(service.networkConfiguration).toEqual({
      subnets: SUBNETS,
      securityGroups: [`sg-0${appGroup.name}`],
      assignPublicIp: false,
    });
    expect(plain(appGroup)).toMatchObject({ vpcId: "vpc-0app" });
    expect((plain(appGroup).egress as { fromPort: number }[]).map((e) => e.fromPort)).toEqual([443, 12345]);
  });

  test("the URL still reaches the container only through the parameter", () => {
    const json = String(only(run, "aws:ecs/taskDefinition:TaskDefinition").inputs.containerDefinitions);
    expect(json).not.toContain(PASSWORD);
    const [container] = JSON.parse(json) as ContainerDefinition[];
    expect(container.secrets.map((s) => s.name)).toEqual(["REDIS_URL"]);
    expect(container.environment.find((e) => e.name === "REDIS_CLUSTER_NODES")?.value).toBe(CLOUD_ENDPOINT);
  });
});

describe("the example's project files", () => {
  test("Pulumi.yaml is valid against Pulumi's project schema", () => {
    const schema = JSON.parse(
      fs.readFileSync(path.join(ROOT, "reference/pulumi/project.schema.json"), "utf8"),
    ) as object;
    const validate = new Ajv2020({ strict: false, allErrors: true }).compile(schema);
    const ok = validate(project);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
    expect((project as unknown as { runtime: unknown }).runtime).toBe("nodejs");
  });

  test("Pulumi.yaml declares exactly the keys the program reads: required ones without a default, the rest with task.ts's", () => {
    const declared = project.config;
    expect(Object.keys(declared).sort()).toEqual([...REQUIRED_KEYS, ...Object.keys(DEFAULTS)].sort());
    // The CLI refuses a stack that leaves a key without default unset: that is what makes these required.
    for (const key of REQUIRED_KEYS)
      expect({ key, default: declared[key].default }).toEqual({ key, default: undefined });
    for (const [key, value] of Object.entries(DEFAULTS))
      expect({ key, type: declared[key].type, default: declared[key].default }).toEqual({
        key,
        type: "integer",
        default: value,
      });
    for (const [key, d] of Object.entries(declared))
      expect({ key, described: (d.description?.length ?? 0) > 10 }).toEqual({ key, described: true });
    const source = fs.readFileSync(path.join(EXAMPLE, "index.ts"), "utf8");
    const read = [...source.matchAll(/config\.(?:require|get)(?:Number)?\("(\w+)"\)/g)].map((m) => m[1]).sort();
    expect(read).toEqual(Object.keys(declared).sort());
  });

  test("its package.json pins the repository's versions of the Pulumi packages", () => {
    type Pkg = { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    const root = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as Pkg;
    const example = JSON.parse(fs.readFileSync(path.join(EXAMPLE, "package.json"), "utf8")) as Pkg;
    for (const name of ["@pulumi/pulumi", "@pulumi/aws"])
      expect(example.dependencies[name]).toBe(root.dependencies[name]);
    for (const name of ["typescript", "@types/node"])
      expect(example.devDependencies[name]).toBe(root.devDependencies[name]);
  });
});
