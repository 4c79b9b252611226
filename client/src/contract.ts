/**
 * The stack's connection contract as an app receives it: the env map the redis-stack stack exports (its
 * `env` output), read and checked here so a deploy that forgot a name fails at start-up naming it, not at
 * the first command. The names are the stack's (components/contract/connection.ts ENV_NAMES; a test keeps the two
 * lists equal).
 */

/** Each contract field and the env name it comes from. */
export const CONTRACT_ENV = {
  url: "REDIS_URL",
  clusterMode: "REDIS_CLUSTER_MODE",
  nodes: "REDIS_CLUSTER_NODES",
  tls: "REDIS_TLS",
  maxRetries: "REDIS_MAX_RETRIES",
  connectTimeout: "REDIS_CONNECT_TIMEOUT",
  caPem: "REDIS_CA_PEM",
  sentinels: "REDIS_SENTINELS",
  sentinelMaster: "REDIS_SENTINEL_MASTER",
} as const;

export interface NodeEndpoint {
  host: string;
  port: number;
}

export interface Contract {
  username: string;
  password: string;
  tls: boolean;
  /** The CA that signed the nodes' certificates (PEM); always present when tls is on. */
  caPem?: string;
  clusterMode: boolean;
  /** Where discovery starts: every node of a cluster, or the one endpoint. */
  nodes: NodeEndpoint[];
  /**
   * The Sentinel topology: the primary is whichever node these Sentinels name for `masterName`
   * (REDIS_SENTINELS, REDIS_SENTINEL_MASTER); absent for a cluster or a single endpoint.
   */
  sentinel?: { masterName: string; sentinels: NodeEndpoint[] };
  /** Reconnect attempts per connection before it gives up (REDIS_MAX_RETRIES). */
  maxRetries: number;
  connectTimeoutMs: number;
}

/** A contract env value that is missing or wrong: names the variable and what to do. */
export class ContractError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(
      `${variable} ${problem}. Set the app's environment from the redis-stack stack's \`env\` output ` +
        "(pulumi stack output env --show-secrets, or a StackReference in the app's deploy).",
    );
    this.name = "ContractError";
  }
}

type Env = Record<string, string | undefined>;

function parseEndpoint(text: string, variable: string): NodeEndpoint {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new ContractError(variable, `has "${text}", not a host:port list`);
  return { host: m[1], port };
}

function parseBool(env: Env, variable: string): boolean | undefined {
  const v = env[variable];
  if (v === undefined || v === "") return undefined;
  if (v !== "true" && v !== "false") throw new ContractError(variable, `is "${v}", not true or false`);
  return v === "true";
}

function parseInt(env: Env, variable: string, min: number): number | undefined {
  const v = env[variable];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new ContractError(variable, `is "${v}", not a whole number >= ${min}`);
  return n;
}

/** Defaults for the two tuning names when a deploy leaves them out (the stack always sets them). */
export const CONTRACT_DEFAULTS = { maxRetries: 10, connectTimeoutMs: 5000 } as const;

export function readContract(env: Env): Contract {
  const raw = env[CONTRACT_ENV.url];
  if (!raw) throw new ContractError(CONTRACT_ENV.url, "is not set");
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Never echo the value: it holds the password.
    throw new ContractError(CONTRACT_ENV.url, "is not a URL (redis:// or rediss://)");
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:")
    throw new ContractError(CONTRACT_ENV.url, `has scheme ${url.protocol}, not redis: or rediss:`);
  const tls = url.protocol === "rediss:";
  const tlsFlag = parseBool(env, CONTRACT_ENV.tls);
  if (tlsFlag !== undefined && tlsFlag !== tls)
    throw new ContractError(CONTRACT_ENV.tls, `says ${tlsFlag} but REDIS_URL's scheme is ${url.protocol}`);
  const caPem = env[CONTRACT_ENV.caPem]?.trim() || undefined;
  if (tls && !caPem)
    throw new ContractError(
      CONTRACT_ENV.caPem,
      "is not set: TLS is on and this client always verifies the servers' certificates against the stack's CA",
    );
  if (caPem && !/-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/.test(caPem))
    throw new ContractError(CONTRACT_ENV.caPem, "holds no PEM certificate");
  const nodesText = env[CONTRACT_ENV.nodes]?.trim();
  const nodes = nodesText
    ? nodesText.split(",").map((s) => parseEndpoint(s, CONTRACT_ENV.nodes))
    : [parseEndpoint(`${url.hostname}:${url.port || "6379"}`, CONTRACT_ENV.url)];
  const clusterMode = parseBool(env, CONTRACT_ENV.clusterMode) ?? false;
  const sentinel = readSentinel(env, clusterMode);
  return {
    username: decodeURIComponent(url.username) || "default",
    password: decodeURIComponent(url.password),
    tls,
    ...(caPem ? { caPem } : {}),
    clusterMode,
    nodes,
    ...(sentinel ? { sentinel } : {}),
    maxRetries: parseInt(env, CONTRACT_ENV.maxRetries, 0) ?? CONTRACT_DEFAULTS.maxRetries,
    connectTimeoutMs: parseInt(env, CONTRACT_ENV.connectTimeout, 1) ?? CONTRACT_DEFAULTS.connectTimeoutMs,
  };
}

/** REDIS_SENTINELS and REDIS_SENTINEL_MASTER: both or neither, and never with cluster mode. */
function readSentinel(env: Env, clusterMode: boolean): Contract["sentinel"] {
  const list = env[CONTRACT_ENV.sentinels]?.trim();
  const masterName = env[CONTRACT_ENV.sentinelMaster]?.trim();
  if (!list && !masterName) return undefined;
  if (!list) throw new ContractError(CONTRACT_ENV.sentinels, `is not set, but ${CONTRACT_ENV.sentinelMaster} is`);
  if (!masterName) throw new ContractError(CONTRACT_ENV.sentinelMaster, `is not set, but ${CONTRACT_ENV.sentinels} is`);
  if (clusterMode)
    throw new ContractError(
      CONTRACT_ENV.clusterMode,
      "is true, but a Sentinel topology (REDIS_SENTINELS) is not a cluster",
    );
  return { masterName, sentinels: list.split(",").map((t) => parseEndpoint(t, CONTRACT_ENV.sentinels)) };
}
