/** This machine's redis-server and redis-cli, for the suites that run real Redis processes locally. */
import { spawnSync, SpawnSyncReturns } from "child_process";

export const hasRedis = spawnSync("redis-server", ["--version"]).status === 0;
const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
/**
 * A suite of real redis-server processes: skipped without one for a normal user; in CI or as root (who can
 * install it: sudo bash lab/install-packages.sh) it runs and fails on the missing server instead.
 */
export const describeRedis = hasRedis || process.env.CI === "true" || asRoot ? describe : describe.skip;

export interface RedisCliLogin {
  user?: string;
  /** Passed in REDISCLI_AUTH, never on the command line. */
  password?: string;
  /** TLS, verifying the server against this CA file. */
  caFile?: string;
}

/** redis-cli against host:port as `login`, with `args`. */
export function redisCli(
  host: string,
  port: number,
  login: RedisCliLogin,
  ...args: string[]
): SpawnSyncReturns<string> {
  return spawnSync(
    "redis-cli",
    [
      "-h",
      host,
      "-p",
      String(port),
      ...(login.caFile ? ["--tls", "--cacert", login.caFile] : []),
      ...(login.user ? ["--user", login.user, "--no-auth-warning"] : []),
      ...args,
    ],
    {
      env: { ...process.env, ...(login.password !== undefined ? { REDISCLI_AUTH: login.password } : {}) },
      encoding: "utf8",
      timeout: 5000,
    },
  );
}
