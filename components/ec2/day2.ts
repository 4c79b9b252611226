/**
 * What a deployed EC2 cluster may become at the next `pulumi up`. Pure: the stack checks a change against
 * what it deployed last (the component's `deployment`, read back from the stack's outputs) at preview, and the lab and the local mode apply
 * changes through the same rules.
 */
import { ConfigProblem, Ec2Settings, Topology } from "../config/settings";
import { planTopology } from "./topology";

/** What the stack exports about the cluster it runs (the `deployment` output), read back at the next update. */
export interface DeployedShape {
  target: "ec2";
  /** The component's name; absent in records from before the library, which were the stack's own cluster. */
  component?: string;
  /** Absent in the deployments of stacks older than the Sentinel topology: those run a cluster. */
  topology?: Topology;
  shards: number;
  replicasPerShard: number;
  tls: boolean;
  dataVolumeGb: number;
  /** Node names, plan order. */
  nodes: string[];
}

/** The shape a cluster with these settings exports (node names follow from shards and replicas alone). */
export function deploymentOf(component: string, ec2: Ec2Settings, tls: boolean): DeployedShape {
  return {
    target: "ec2",
    component,
    topology: ec2.topology,
    shards: ec2.shards,
    replicasPerShard: ec2.replicasPerShard,
    tls,
    dataVolumeGb: ec2.dataVolumeGb,
    nodes: planTopology(ec2.shards, ec2.replicasPerShard, ec2.replicasPerShard + 1).map((n) => n.name),
  };
}

export function isDeployedShape(value: unknown): value is DeployedShape {
  const v = value as Partial<DeployedShape> | undefined;
  return (
    typeof v === "object" &&
    v !== null &&
    v.target === "ec2" &&
    (v.component === undefined || typeof v.component === "string") &&
    (v.topology === undefined || v.topology === "cluster" || v.topology === "sentinel") &&
    typeof v.shards === "number" &&
    typeof v.replicasPerShard === "number" &&
    typeof v.tls === "boolean" &&
    typeof v.dataVolumeGb === "number" &&
    Array.isArray(v.nodes)
  );
}

/**
 * Changes a running cluster cannot take in place, each naming the key and what to do instead. Shards may
 * grow (new shards join empty and get their share of the slots) and shrink (the leaving shards are drained
 * before their nodes are deleted); the rest of the shape is fixed once deployed.
 */
export function checkDeployedChange(deployed: DeployedShape | undefined, next: DeployedShape): ConfigProblem[] {
  if (!deployed) return [];
  const problems: ConfigProblem[] = [];
  const deployedTopology = deployed.topology ?? "cluster";
  if ((next.topology ?? "cluster") !== deployedTopology)
    problems.push({
      key: "topology",
      value: next.topology,
      problem: `the deployed stack runs a ${deployedTopology}; its nodes, their data and every app's client follow from it, so it cannot change in place`,
      fix: `pulumi config set topology ${deployedTopology} (for the other topology deploy a new stack and move the data to it)`,
    });
  if (next.replicasPerShard !== deployed.replicasPerShard)
    problems.push({
      key: "replicasPerShard",
      value: String(next.replicasPerShard),
      problem: `the deployed cluster runs ${deployed.replicasPerShard} replica(s) per shard; every node's address and zone follow from it, so it cannot change in place`,
      fix: `pulumi config set replicasPerShard ${deployed.replicasPerShard} (for another replica count deploy a new stack and move the data to it)`,
    });
  if (next.tls !== deployed.tls)
    problems.push({
      key: "tls",
      value: String(next.tls),
      problem: `the deployed cluster runs with TLS ${deployed.tls ? "on" : "off"}; Redis Cluster nodes cannot mix TLS and plain links, so no rolling change can switch it`,
      fix: `pulumi config set tls ${deployed.tls} (to switch, deploy a new stack and move the data to it)`,
    });
  if (next.dataVolumeGb < deployed.dataVolumeGb)
    problems.push({
      key: "dataVolumeGb",
      value: String(next.dataVolumeGb),
      problem: `the deployed data volumes have ${deployed.dataVolumeGb} GB; EBS volumes only grow`,
      fix: `pulumi config set dataVolumeGb ${deployed.dataVolumeGb} (or larger: the filesystems grow online)`,
    });
  return problems;
}

/** Nodes a change adds and removes (removed ones are drained first), by name. */
export function nodeChange(
  deployed: DeployedShape | undefined,
  next: DeployedShape,
): { added: string[]; leaving: string[] } {
  const before = new Set(deployed?.nodes ?? []);
  const after = new Set(next.nodes);
  return {
    added: next.nodes.filter((n) => deployed !== undefined && !before.has(n)),
    leaving: [...before].filter((n) => !after.has(n)),
  };
}
