/**
 * The client reads exactly the env names the stack exports (one list each side, kept equal here), and a
 * missing or wrong name fails at start-up naming it, without echoing the URL (it holds the password).
 */
import { connectionContract, ENV_NAMES } from "../../../components/contract/connection";
import { CONTRACT_ENV, ContractError, readContract } from "../../../client/src/contract";

const CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const stackEnv = (tls: boolean) =>
  connectionContract({
    target: "ec2",
    nodes: ["10.0.1.10:6379", "10.0.2.10:6379", "10.0.3.10:6379"],
    username: "app",
    password: "p@ss/word",
    tls,
    clusterMode: true,
    caCertificate: tls ? CA : undefined,
    client: { maxRetries: 7, connectTimeoutMs: 4000 },
  }).env;

test("the client reads the stack's env names, no more and no fewer", () => {
  expect(Object.values(CONTRACT_ENV).sort()).toEqual([...ENV_NAMES].sort());
});

test("the stack's own env map (TLS on) reads back as the contract it describes", () => {
  const c = readContract(stackEnv(true));
  expect(c).toEqual({
    username: "app",
    password: "p@ss/word",
    tls: true,
    caPem: CA.trim(),
    clusterMode: true,
    nodes: [
      { host: "10.0.1.10", port: 6379 },
      { host: "10.0.2.10", port: 6379 },
      { host: "10.0.3.10", port: 6379 },
    ],
    maxRetries: 7,
    connectTimeoutMs: 4000,
  });
  expect(readContract(stackEnv(false)).tls).toBe(false);
});

test("each broken name fails naming the variable, and the URL's password never appears", () => {
  const env = stackEnv(true);
  const fails = (over: Record<string, string | undefined>, variable: string) => {
    let err: unknown;
    try {
      readContract({ ...env, ...over });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ContractError);
    expect((err as ContractError).variable).toBe(variable);
    expect((err as Error).message).not.toContain("p@ss");
    expect((err as Error).message).toContain("`env` output");
  };
  fails({ REDIS_URL: undefined }, "REDIS_URL");
  fails({ REDIS_URL: "http://app:p@ss@x:1" }, "REDIS_URL");
  fails({ REDIS_URL: "not a url p@ss" }, "REDIS_URL");
  fails({ REDIS_CA_PEM: undefined }, "REDIS_CA_PEM");
  fails({ REDIS_CA_PEM: "just text" }, "REDIS_CA_PEM");
  fails({ REDIS_TLS: "false" }, "REDIS_TLS");
  fails({ REDIS_CLUSTER_MODE: "yes" }, "REDIS_CLUSTER_MODE");
  fails({ REDIS_CLUSTER_NODES: "10.0.1.10" }, "REDIS_CLUSTER_NODES");
  fails({ REDIS_MAX_RETRIES: "-1" }, "REDIS_MAX_RETRIES");
  fails({ REDIS_CONNECT_TIMEOUT: "0" }, "REDIS_CONNECT_TIMEOUT");
});
