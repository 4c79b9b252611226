/**
 * `pulumi up` finishes when the cluster is healthy, or fails naming the node that is not and why.
 *
 * Each node publishes its state to SSM (`<prefix>/status/<node>`, written by node.sh after every boot's
 * cluster step: `starting`, `ok`, or `failed` with the reason). A node's `ok` means it is in the cluster
 * (a master created with its slots, or a replica attached to its shard's master), so every node `ok` means
 * every slot served and every replica attached. Only statuses of the current instances count: parameters
 * outlive instances and stacks.
 *
 * `assessCluster` is pure; `waitForCluster` polls SSM through an injected reader (the AWS SDK in the
 * dynamic resource, the lab's endpoint in tests).
 */

export interface NodeStatus {
  /** `starting`, `ok` or `failed` (anything else counts as not ok yet). */
  state: string;
  node: string;
  instance: string;
  time: string;
  detail: string;
  /** Day-2 facts (absent in statuses of older nodes): the instance type, the desired-settings version applied, the slots served. */
  instanceType?: string;
  settings?: string;
  generation?: number;
  slots?: number;
}

export interface ExpectedNode {
  name: string;
  /** SSM parameter the node writes. */
  parameter: string;
  /** The instance id now backing the node: statuses of earlier instances are stale (absent: any instance). */
  instanceId?: string;
  /** The desired settings (components/ec2/desired.ts versionOf) the node must have applied. */
  settingsVersion?: string;
  /** The roll generation it must have restarted into (nodeGeneration). */
  generation?: number;
  /** The instance type it must run on (an instanceType change stops and starts it). */
  instanceType?: string;
  /** A node leaving the plan: done once it serves no slot any more (its shard drained). */
  drained?: boolean;
}

export interface Assessment {
  /** Every node reported `ok` from its current instance. */
  healthy: boolean;
  /** A node reported `failed` from its current instance: waiting longer will not help. */
  failed: { node: string; detail: string }[];
  /** Nodes not yet `ok` (missing, stale or starting), with what is known. */
  waiting: { node: string; detail: string }[];
}

export function parseStatus(value: string | undefined): NodeStatus | undefined {
  if (value === undefined) return undefined;
  try {
    const parsed = JSON.parse(value) as Partial<NodeStatus>;
    if (typeof parsed.state !== "string" || typeof parsed.instance !== "string") return undefined;
    return {
      state: parsed.state,
      node: String(parsed.node ?? ""),
      instance: parsed.instance,
      time: String(parsed.time ?? ""),
      detail: String(parsed.detail ?? ""),
      instanceType: typeof parsed.instanceType === "string" ? parsed.instanceType : undefined,
      settings: typeof parsed.settings === "string" ? parsed.settings : undefined,
      slots: typeof parsed.slots === "number" ? parsed.slots : undefined,
      generation: typeof parsed.generation === "number" ? parsed.generation : undefined,
    };
  } catch {
    return undefined;
  }
}

export function assessCluster(expected: ExpectedNode[], values: Record<string, string | undefined>): Assessment {
  const result: Assessment = { healthy: false, failed: [], waiting: [] };
  for (const n of expected) {
    const status = parseStatus(values[n.parameter]);
    if (!status) result.waiting.push({ node: n.name, detail: "no status yet (still booting?)" });
    else if (n.instanceId !== undefined && status.instance !== n.instanceId)
      result.waiting.push({ node: n.name, detail: `status is from ${status.instance}, not ${n.instanceId}` });
    else if (status.state === "failed") result.failed.push({ node: n.name, detail: status.detail });
    else if (status.state !== "ok") result.waiting.push({ node: n.name, detail: `${status.state}: ${status.detail}` });
    else if (n.instanceType !== undefined && status.instanceType !== n.instanceType)
      result.waiting.push({ node: n.name, detail: `runs on ${status.instanceType ?? "?"}, not ${n.instanceType} yet` });
    else if (n.settingsVersion !== undefined && status.settings !== n.settingsVersion)
      result.waiting.push({
        node: n.name,
        detail: `applying settings ${n.settingsVersion} (has ${status.settings || "none"})`,
      });
    else if (n.generation !== undefined && (status.generation ?? 0) < n.generation)
      result.waiting.push({
        node: n.name,
        detail: `rolling restart: at generation ${status.generation ?? 0}, not ${n.generation} yet`,
      });
    else if (n.drained && status.slots !== 0)
      result.waiting.push({ node: n.name, detail: `draining: still serves ${status.slots ?? "?"} slots` });
  }
  result.healthy = result.failed.length === 0 && result.waiting.length === 0;
  return result;
}

export interface WaitOptions {
  timeoutMs: number;
  pollMs?: number;
  /** Progress lines (Pulumi shows them); called when the picture changes. */
  log?: (message: string) => void;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** Reads parameters by name; absent names are simply missing from the result. */
export type ParameterReader = (names: string[]) => Promise<Record<string, string>>;

export function describeWaiting(a: Assessment): string {
  return a.waiting.map((w) => `${w.node} (${w.detail})`).join(", ");
}

/** Polls until healthy (resolves), a node failed, or the timeout passes (both reject, naming the nodes). */
export async function waitForCluster(
  expected: ExpectedNode[],
  read: ParameterReader,
  opts: WaitOptions,
): Promise<Assessment> {
  const now = opts.now ?? (() => Date.now());
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const deadline = now() + opts.timeoutMs;
  let last = "";
  for (;;) {
    let values: Record<string, string> = {};
    let readError = "";
    try {
      values = await read(expected.map((n) => n.parameter));
    } catch (e) {
      readError = e instanceof Error ? e.message : String(e);
    }
    const a = assessCluster(expected, values);
    if (a.healthy) {
      opts.log?.(`cluster healthy: ${expected.length} nodes ok`);
      return a;
    }
    if (a.failed.length > 0) {
      throw new Error(
        `cluster not healthy: ${a.failed.map((f) => `${f.node} failed: ${f.detail}`).join("; ")} ` +
          "(the node's /var/log/redis-stack.log and its EC2 console output say more)",
      );
    }
    const picture = readError ? `cannot read node status: ${readError}` : `waiting for ${describeWaiting(a)}`;
    if (picture !== last) {
      opts.log?.(picture);
      last = picture;
    }
    if (now() >= deadline) {
      throw new Error(
        `cluster not healthy after ${Math.round(opts.timeoutMs / 1000)}s: ${picture}. ` +
          "Raise healthTimeoutMinutes if the nodes are still installing, or look at their console output.",
      );
    }
    await sleep(opts.pollMs ?? 5000);
  }
}

/** Reads status parameters with the AWS SDK (the deployer's credentials); GetParameters takes 10 names a call. */
export function ssmReader(region: string): ParameterReader {
  return async (names) => {
    const { SSMClient, GetParametersCommand } = await import("@aws-sdk/client-ssm");
    const client = new SSMClient({ region });
    const values: Record<string, string> = {};
    for (let i = 0; i < names.length; i += 10) {
      const out = await client.send(new GetParametersCommand({ Names: names.slice(i, i + 10) }));
      for (const p of out.Parameters ?? []) if (p.Name && p.Value !== undefined) values[p.Name] = p.Value;
    }
    return values;
  };
}
