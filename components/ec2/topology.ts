/**
 * Cluster topology, decided at deploy time: which node is master of which slots, which replica
 * follows which master, in which availability zone, at which fixed private address.
 * Pure functions only; the EC2 component, the user-data, the local mode and the tests all use them.
 */
import { ConfigProblem } from "../config/settings";

export const TOTAL_SLOTS = 16384;

export interface SlotRange {
  start: number;
  end: number;
}

export interface PlannedNode {
  /** 0-based order: masters 0..shards-1, then replicas shard by shard (node 0 creates the cluster). */
  index: number;
  /**
   * Stable name from the node's place in its shard: `shard<k>-<r>`, r = 0 for the planned master.
   * Adding shards adds names and never renames a node (resource names and addresses derive from it).
   */
  name: string;
  role: "master" | "replica";
  shard: number;
  /** 0 for the planned master, 1..R for its replicas. */
  member: number;
  /** Planned master's index, for replicas. */
  masterIndex?: number;
  /** Index into the list of availability zones. */
  azIndex: number;
  /** Slots served by this shard (masters and replicas carry their shard's range). */
  slots: SlotRange;
}

export function nodeName(shard: number, member: number): string {
  return `shard${shard}-${member}`;
}

/**
 * Splits 16384 slots evenly over `shards` the way `redis-cli --cluster create` does:
 * 3 shards -> 0-5460, 5461-10922, 10923-16383.
 */
export function planSlots(shards: number): SlotRange[] {
  const per = TOTAL_SLOTS / shards;
  const ranges: SlotRange[] = [];
  let first = 0;
  let cursor = 0;
  for (let i = 0; i < shards; i++) {
    let last = Math.round(cursor + per - 1);
    if (last > TOTAL_SLOTS - 1 || i === shards - 1) last = TOTAL_SLOTS - 1;
    ranges.push({ start: first, end: last });
    first = last + 1;
    cursor += per;
  }
  return ranges;
}

/**
 * Places nodes: master k in AZ k mod Z; its r-th replica in AZ (k + r) mod Z, so no replica
 * shares an AZ with its master and losing one AZ loses at most one copy of each shard.
 */
export function planTopology(shards: number, replicasPerShard: number, azCount: number): PlannedNode[] {
  if (azCount < 2) throw new Error(`need at least 2 availability zones, got ${azCount}`);
  if (replicasPerShard > azCount - 1) {
    throw new Error(
      `${replicasPerShard} replicas per shard need ${replicasPerShard + 1} availability zones, got ${azCount}`,
    );
  }
  const slots = planSlots(shards);
  const nodes: PlannedNode[] = [];
  for (let k = 0; k < shards; k++) {
    nodes.push({
      index: k,
      name: nodeName(k, 0),
      role: "master",
      shard: k,
      member: 0,
      azIndex: k % azCount,
      slots: slots[k],
    });
  }
  for (let r = 1; r <= replicasPerShard; r++) {
    for (let k = 0; k < shards; k++) {
      const index = nodes.length;
      nodes.push({
        index,
        name: nodeName(k, r),
        role: "replica",
        shard: k,
        member: r,
        masterIndex: k,
        azIndex: (k + r) % azCount,
        slots: slots[k],
      });
    }
  }
  return nodes;
}

/** Parses `a.b.c.d/n` into a 32-bit number and prefix. */
function parseCidr(cidr: string): { base: number; prefix: number } {
  const [addr, prefix] = cidr.split("/");
  const base = addr.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  return { base, prefix: Number(prefix) };
}

export function ipToString(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

/**
 * Fixed private address of each node, in its AZ's subnet: host `offset + shard * (R + 1) + member`.
 * Unique across subnets and stable when shards are added (new shards take higher host numbers).
 * Throws if a subnet is too small.
 */
export function assignAddresses(nodes: PlannedNode[], subnetCidrs: string[], offset: number): string[] {
  const perShard = Math.max(...nodes.map((n) => n.member)) + 1;
  return nodes.map((node) => {
    const cidr = subnetCidrs[node.azIndex];
    const { base, prefix } = parseCidr(cidr);
    const host = offset + node.shard * perShard + node.member;
    // AWS reserves the broadcast address (last) of every subnet.
    if (host >= 2 ** (32 - prefix) - 1)
      throw new Error(`subnet ${cidr} has no room for ${node.name} at host offset ${host}`);
    return ipToString(base + host);
  });
}

export interface SubnetInfo {
  id: string;
  availabilityZone: string;
  cidrBlock: string;
}

/**
 * Checks subnets handed in through `subnetIds` (looked up at preview) against the topology:
 * at least 2 distinct AZs, enough AZs for the replicas, room for the static addresses.
 * Returns one subnet per AZ, in the order given, for placement.
 */
export function checkSubnets(
  subnets: SubnetInfo[],
  replicasPerShard: number,
  /** Highest host number the plan uses past the offset (shards x (R + 1)). */
  nodesPerAz: number,
  offset: number,
): { perAz: SubnetInfo[]; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const perAz: SubnetInfo[] = [];
  for (const s of subnets) {
    if (!perAz.some((p) => p.availabilityZone === s.availabilityZone)) perAz.push(s);
  }
  const ids = subnets.map((s) => `${s.id} (${s.availabilityZone})`).join(", ");
  if (perAz.length < 2) {
    problems.push({
      key: "subnetIds",
      value: ids,
      problem: "all subnets are in one availability zone: a master and its replica must not share an AZ",
      fix: "list private subnets in at least 2 (ideally 3) different AZs",
    });
  } else if (perAz.length < replicasPerShard + 1) {
    problems.push({
      key: "subnetIds",
      value: ids,
      problem: `${replicasPerShard} replicas per shard need ${replicasPerShard + 1} AZs to keep every copy in its own AZ, got ${perAz.length}`,
      fix: `add subnets in more AZs or pulumi config set replicasPerShard ${perAz.length - 1}`,
    });
  }
  for (const s of perAz) {
    const size = 2 ** (32 - Number(s.cidrBlock.split("/")[1]));
    if (offset + nodesPerAz > size - 1) {
      problems.push({
        key: "subnetIds",
        value: `${s.id} (${s.cidrBlock})`,
        problem: `has no room for ${nodesPerAz} static addresses from host offset ${offset}`,
        fix: "use a larger subnet or a lower ipHostOffset",
      });
    }
  }
  return { perAz, problems };
}

/**
 * Splits a VPC CIDR into the subnets the stack creates when none are given:
 * 3 private (one per AZ) and 3 public (for the NAT gateway), each 1/8 of the VPC.
 */
export function planVpcSubnets(vpcCidr: string, azCount: number): { privateCidrs: string[]; publicCidrs: string[] } {
  const { base, prefix } = parseCidr(vpcCidr);
  const subPrefix = prefix + 3;
  const size = 2 ** (32 - subPrefix);
  const cidr = (i: number): string => `${ipToString(base + i * size)}/${subPrefix}`;
  const privateCidrs = Array.from({ length: azCount }, (_, i) => cidr(i));
  const publicCidrs = Array.from({ length: azCount }, (_, i) => cidr(4 + i));
  return { privateCidrs, publicCidrs };
}

/** A planned node with its fixed address. */
export interface NodeAddress {
  node: PlannedNode;
  ip: string;
  port: number;
}

/** The whole cluster with addresses: topology + one subnet CIDR per AZ. */
export function addressedTopology(
  shards: number,
  replicasPerShard: number,
  subnetCidrs: string[],
  offset: number,
  port: number,
): NodeAddress[] {
  const nodes = planTopology(shards, replicasPerShard, subnetCidrs.length);
  const ips = assignAddresses(nodes, subnetCidrs, offset);
  return nodes.map((node, i) => ({ node, ip: ips[i], port }));
}
