/**
 * What every running node should be, as one SSM parameter (`<prefix>/settings`) the stack rewrites at each
 * `pulumi up` and every node applies within a timer period (node.sh `settings`). Pure: the component, the
 * lab and the local mode render the same text, and the node's shell reads it with awk.
 *
 *   version <hash of everything below>
 *   generation <n>                      bump to roll every node (package upgrade, TLS material, restart)
 *   node <name> <ip> <port> <role> <shard>   the current plan: nodes not in it are drained and forgotten
 *   set <directive> <value...>          a redis.conf directive Redis changes live (CONFIG SET)
 *   app-acl <rules...>                  the app user's ACL rules (node/appAcl.ts), applied live (ACL SETUSER)
 */
import { createHash } from "crypto";
import { EvictionPolicy, Persistence } from "../config/settings";
import { NodeAddress } from "./topology";

/**
 * Directives every node applies live with CONFIG SET (no restart), written to its settings.conf so that
 * the next boot starts with them. Everything else in redis.conf is fixed by the node's role in the plan.
 */
export const LIVE_DIRECTIVES = ["maxmemory", "maxmemory-policy", "cluster-node-timeout", "appendonly", "save"] as const;
export type LiveDirective = (typeof LIVE_DIRECTIVES)[number];

/** RDB snapshot schedule when RDB is on (seconds/changes pairs, as Redis writes it in CONFIG GET save). */
export const RDB_SAVE_SCHEDULE = "900 1 300 10 60 10000";

export interface LiveSettingsInput {
  maxmemoryBytes: number;
  maxmemoryPolicy: EvictionPolicy;
  nodeTimeoutMs: number;
  persistence: Persistence;
}

/** The live directives with their values in CONFIG GET's form (an empty save schedule is ""). */
export function liveSettings(s: LiveSettingsInput): Array<[LiveDirective, string]> {
  const aof = s.persistence === "aof+rdb" || s.persistence === "aof";
  const rdb = s.persistence === "aof+rdb" || s.persistence === "rdb";
  return [
    ["maxmemory", String(s.maxmemoryBytes)],
    ["maxmemory-policy", s.maxmemoryPolicy],
    ["cluster-node-timeout", String(s.nodeTimeoutMs)],
    ["appendonly", aof ? "yes" : "no"],
    ["save", rdb ? RDB_SAVE_SCHEDULE : ""],
  ];
}

/**
 * The live directives as redis.conf lines. Inside one config load the first `save` resets the schedule
 * and later ones append, so `save ""` comes first and the schedule (if any) after it.
 */
export function renderSettingsConf(live: Array<[LiveDirective, string]>): string {
  return live
    .flatMap(([k, v]) => (k === "save" ? ['save ""', ...(v === "" ? [] : [`save ${v}`])] : [`${k} ${v}`]))
    .join("\n");
}

export interface DesiredSettingsInput extends LiveSettingsInput {
  /** Bumped to restart every node once, one at a time (replicas first, masters after a handoff). */
  generation: number;
  plan: NodeAddress[];
  /** The app user's ACL rules: the default and the team's `appAclGrants` (node/appAcl.ts appAclRules). */
  appAclRules: string;
}

/** SSM's limit for a Standard String parameter. */
export const DESIRED_SETTINGS_LIMIT_BYTES = 4096;

export function renderDesiredSettings(d: DesiredSettingsInput): string {
  const body = [
    `generation ${d.generation}`,
    ...[...d.plan]
      .sort((a, b) => a.node.index - b.node.index)
      .map((n) => `node ${n.node.name} ${n.ip} ${n.port} ${n.node.role} ${n.node.shard}`),
    ...liveSettings(d).map(([k, v]) => (v === "" ? `set ${k}` : `set ${k} ${v}`)),
    `app-acl ${d.appAclRules}`,
  ].join("\n");
  const text = `version ${desiredVersion(body)}\n${body}`;
  if (Buffer.byteLength(text) > DESIRED_SETTINGS_LIMIT_BYTES)
    throw new Error(
      `the desired settings are ${Buffer.byteLength(text)} bytes, over SSM's ${DESIRED_SETTINGS_LIMIT_BYTES} for a Standard parameter (too many nodes)`,
    );
  return text;
}

function desiredVersion(body: string): string {
  return createHash("sha256").update(body).digest("hex").slice(0, 12);
}

/** The version a node publishes once it has applied `text` (the first line). */
export function versionOf(text: string): string {
  const m = /^version (\S+)/.exec(text);
  if (!m) throw new Error("desired settings text has no version line");
  return m[1];
}

/**
 * Order of a rolling restart: replicas first, then masters (each hands its slots to its replica before
 * it stops), so at most one node of a shard is down at a time and each master restarts only once.
 */
export function rollOrder(plan: NodeAddress[]): string[] {
  const byIndex = [...plan].sort((a, b) => a.node.index - b.node.index);
  return [
    ...byIndex.filter((n) => n.node.role === "replica").map((n) => n.node.name),
    ...byIndex.filter((n) => n.node.role === "master").map((n) => n.node.name),
  ];
}
