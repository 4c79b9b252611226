/**
 * redis-stack as a library: production Redis inside any Pulumi program.
 *
 * ```ts
 * import { RedisEc2Cluster } from "<a checkout of this repository>/components"; // by path: docs/library.md
 * const cache = new RedisEc2Cluster("cache", { shards: 3, instanceType: "r7g.large" });
 * export const redis = cache.outputs; // env, redisUrl, vpcId, subnetIds, clientSecurityGroupId, deployment, ...
 * ```
 *
 * Both components take the stack config's keys as arguments (docs/configuration.md), every one optional
 * where a default exists, validated before anything is created; both export the same connection contract
 * (docs/contract.md). docs/library.md has the whole story.
 */
export { RedisEc2Cluster } from "./ec2/cluster";
export type { Ec2ClusterOutputs, MonitoringOutput } from "./ec2/cluster";
export type { RedisEc2ClusterArgs } from "./ec2/args";
export type { DeployedShape } from "./ec2/day2";
export { RedisCloudDatabase } from "./cloud/database";
export type { CloudDatabaseOutputs } from "./cloud/database";
export type { RedisCloudDatabaseArgs } from "./cloud/args";
export { connectionContract, ENV_NAMES, toDotenv } from "./contract/connection";
export type { ConnectionContract, ConnectionOutputs, ContractEnv, EnvName } from "./contract/connection";
export { ConfigError } from "./config/problems";
export type { EvictionPolicy, Persistence, Topology } from "./config/settings";
