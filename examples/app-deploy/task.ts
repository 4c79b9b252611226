/**
 * What the app's Fargate task gets from the redis stack, decided without any cloud call: which env names
 * may sit in the task definition and which are secrets, the container definition, the execution role's
 * policy, the app security group's egress and the task size check. index.ts wires these into resources;
 * tests/unit/exampleDeploy.test.ts checks them.
 */

/** Config keys with a default (Pulumi.yaml declares the same values); `redisStack` and `image` have none. */
export const DEFAULTS = { cpu: 256, memory: 512, desiredCount: 2, logRetentionDays: 30 } as const;
export const REQUIRED_KEYS = ["redisStack", "image"] as const;

/**
 * Env names whose values are not secret: anyone who may describe the task definition sees them. The CA
 * certificate is public (it lets clients check the servers, it grants nothing); the node list is the
 * stack's plain `nodes` output.
 */
export const PLAIN_ENV_NAMES: readonly string[] = [
  "REDIS_CLUSTER_MODE",
  "REDIS_CLUSTER_NODES",
  "REDIS_TLS",
  "REDIS_MAX_RETRIES",
  "REDIS_CONNECT_TIMEOUT",
  "REDIS_CA_PEM",
  "REDIS_SENTINELS",
  "REDIS_SENTINEL_MASTER",
];

/** Env names that hold a credential (the URL carries the app user's password): each goes to SSM. */
export const SECRET_ENV_NAMES = ["REDIS_URL"] as const;
export type SecretEnvName = (typeof SECRET_ENV_NAMES)[number];

export interface SplitEnv {
  plain: Record<string, string>;
  secret: Record<SecretEnvName, string>;
}

const isSecretName = (name: string): name is SecretEnvName => (SECRET_ENV_NAMES as readonly string[]).includes(name);

/**
 * Splits the stack's `env` output. A name in neither list is refused rather than guessed at (a new secret
 * must never land in the task definition by default). Errors name variables, never values.
 */
export function splitEnv(env: Record<string, string>, stack: string): SplitEnv {
  const unknown = Object.keys(env).filter((n) => !PLAIN_ENV_NAMES.includes(n) && !isSecretName(n));
  if (unknown.length > 0)
    throw new Error(
      `the env output of ${stack} has ${unknown.join(", ")}, which this deploy does not classify: add each ` +
        "to PLAIN_ENV_NAMES or SECRET_ENV_NAMES in examples/app-deploy/task.ts (secret if it grants access)",
    );
  const missing = SECRET_ENV_NAMES.filter((n) => typeof env[n] !== "string" || env[n] === "");
  if (missing.length > 0) throw new Error(`the env output of ${stack} has no ${missing.join(", ")}`);
  const plain = Object.fromEntries(Object.entries(env).filter(([n]) => PLAIN_ENV_NAMES.includes(n)));
  const secret = Object.fromEntries(SECRET_ENV_NAMES.map((n) => [n, env[n]])) as Record<SecretEnvName, string>;
  return { plain, secret };
}

export const CONTAINER_NAME = "app";

/** Where ECS reads a secret from when a task starts: the parameter's ARN, and its version now. */
export interface SecretRef {
  arn: string;
  version: number;
}

export interface ContainerInput {
  image: string;
  /** Values go into the task definition as they are. */
  plainEnv: Record<string, string>;
  /** Env name -> the SSM parameter holding its value. */
  secrets: Record<string, SecretRef>;
  logGroup: string;
  region: string;
}

const sorted = <T>(r: Record<string, T>) => Object.entries(r).sort(([a], [b]) => a.localeCompare(b));

/**
 * The task's one container, as ECS's `containerDefinitions` JSON (sorted, so diffs stay quiet). ECS reads
 * secrets only when a task starts: a label per secret carries its parameter's version, so a changed value
 * makes a new revision and the service replaces its tasks.
 */
export function containerDefinitions(c: ContainerInput): string {
  return JSON.stringify([
    {
      name: CONTAINER_NAME,
      image: c.image,
      essential: true,
      environment: sorted(c.plainEnv).map(([name, value]) => ({ name, value })),
      secrets: sorted(c.secrets).map(([name, s]) => ({ name, valueFrom: s.arn })),
      dockerLabels: Object.fromEntries(
        sorted(c.secrets).map(([name, s]) => [`secret-version.${name}`, String(s.version)]),
      ),
      logConfiguration: {
        logDriver: "awslogs",
        options: { "awslogs-group": c.logGroup, "awslogs-region": c.region, "awslogs-stream-prefix": CONTAINER_NAME },
      },
    },
  ]);
}

export interface PolicyStatement {
  Sid: string;
  Effect: "Allow";
  Action: string[];
  Resource: string | string[];
}

export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: PolicyStatement[];
}

/** The ECR repository an image lives in, as an ARN; undefined for any other registry (public pulls). */
export function ecrRepositoryArn(image: string): string | undefined {
  const m = /^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/([^:@]+)/.exec(image);
  if (!m) return undefined;
  const [, account, region, repository] = m;
  const partition = region.startsWith("cn-") ? "aws-cn" : region.startsWith("us-gov-") ? "aws-us-gov" : "aws";
  return `arn:${partition}:ecr:${region}:${account}:repository/${repository}`;
}

/**
 * What ECS needs to start the task, and only that. AmazonECSTaskExecutionRolePolicy grants ECR pulls and
 * log writes on "*" and nothing for secrets; this grants the same actions on this app's log group and
 * image repository, plus ssm:GetParameters on its own parameters. No kms:Decrypt: they use the aws/ssm
 * key, whose key policy already lets the account's principals decrypt through SSM.
 */
export function executionRolePolicy(p: { logGroupArn: string; secretArns: string[]; image: string }): PolicyDocument {
  const statements: PolicyStatement[] = [
    {
      Sid: "WriteOwnLogs",
      Effect: "Allow",
      Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
      Resource: [p.logGroupArn, `${p.logGroupArn}:log-stream:*`],
    },
    { Sid: "ReadOwnSecrets", Effect: "Allow", Action: ["ssm:GetParameters"], Resource: p.secretArns },
  ];
  const repository = ecrRepositoryArn(p.image);
  if (repository)
    statements.push(
      // GetAuthorizationToken takes no resource ARN.
      { Sid: "EcrLogin", Effect: "Allow", Action: ["ecr:GetAuthorizationToken"], Resource: "*" },
      {
        Sid: "PullOwnImage",
        Effect: "Allow",
        Action: ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
        Resource: repository,
      },
    );
  return { Version: "2012-10-17", Statement: statements };
}

export interface EgressRule {
  description: string;
  protocol: "tcp";
  fromPort: number;
  toPort: number;
  cidrBlocks: string[];
}

/** The ports of a `host:port,host:port` list (REDIS_CLUSTER_NODES), each once. */
export function endpointPorts(nodes: string): number[] {
  const ports = nodes
    .split(",")
    .map((n) => Number(/:(\d{1,5})$/.exec(n.trim())?.[1]))
    .filter((p) => Number.isInteger(p) && p > 0 && p <= 65535);
  if (ports.length === 0) throw new Error(`REDIS_CLUSTER_NODES has no host:port ("${nodes}")`);
  return [...new Set(ports)].sort((a, b) => a - b);
}

/**
 * The app group's egress: HTTPS for what ECS does on the task's network (image pull, secrets, logs), and
 * the Redis ports when no client security group opens them (a Redis Cloud stack, reached by its address).
 */
export function appEgress(redisPorts: number[]): EgressRule[] {
  const out = (port: number, description: string): EgressRule => ({
    description,
    protocol: "tcp",
    fromPort: port,
    toPort: port,
    cidrBlocks: ["0.0.0.0/0"],
  });
  return [out(443, "HTTPS: image registry, SSM, CloudWatch Logs"), ...redisPorts.map((p) => out(p, "Redis endpoint"))];
}

/** Memory (MiB) Fargate accepts for each cpu value (Linux tasks). */
function fargateMemory(cpu: number): number[] {
  const range = (from: number, to: number, step: number) =>
    Array.from({ length: (to - from) / step + 1 }, (_, i) => from + i * step);
  const table: Record<number, number[]> = {
    256: [512, 1024, 2048],
    512: range(1024, 4096, 1024),
    1024: range(2048, 8192, 1024),
    2048: range(4096, 16384, 1024),
    4096: range(8192, 30720, 1024),
    8192: range(16384, 61440, 4096),
    16384: range(32768, 122880, 8192),
  };
  return table[cpu] ?? [];
}

/** Refuses at preview a cpu/memory pair Fargate would refuse at deploy, naming the keys and the fix. */
export function checkTaskSize(cpu: number, memory: number): void {
  const choices = fargateMemory(cpu);
  if (choices.length === 0)
    throw new Error(`cpu = ${cpu}: not a Fargate size / fix: pulumi config set cpu 256 (256, 512, 1024 ... 16384)`);
  if (!choices.includes(memory))
    throw new Error(
      `memory = ${memory}: Fargate takes ${choices[0]}-${choices[choices.length - 1]} MiB for cpu ${cpu} ` +
        `(${choices.join(", ")}) / fix: pulumi config set memory ${choices[0]}`,
    );
}
