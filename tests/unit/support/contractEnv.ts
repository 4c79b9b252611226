/**
 * The environment of a child process that reads only the given connection contract (a plain, non-TLS
 * single node on 127.0.0.1): no REDIS_* name from the outer environment leaks in.
 */
export function plainContractEnv(
  user: string,
  password: string,
  port: number,
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("REDIS_")),
  );
  return Object.assign(env, {
    REDIS_URL: `redis://${user}:${password}@127.0.0.1:${port}`,
    REDIS_CLUSTER_MODE: "false",
    REDIS_TLS: "false",
    REDIS_MAX_RETRIES: "3",
    REDIS_CONNECT_TIMEOUT: "2000",
    ...extra,
  });
}
