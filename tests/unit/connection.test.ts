/**
 * The connection contract (components/contract/connection.ts), pure: which env names apps get, REDIS_CA_PEM exactly
 * when TLS is on, and the dotenv file the local mode writes, read back by bash as the README sources it.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  CONDITIONAL_ENV_NAMES,
  connectionContract,
  ConnectionFacts,
  ENV_NAMES,
  toDotenv,
} from "../../components/contract/connection";

const CA = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUStackCA\n-----END CERTIFICATE-----\n";
const facts: ConnectionFacts = {
  target: "ec2",
  nodes: ["10.40.0.10:6379", "10.40.1.10:6379"],
  username: "app",
  password: "pw0123456789",
  tls: true,
  clusterMode: true,
  caCertificate: CA,
  client: { maxRetries: 10, connectTimeoutMs: 5000 },
};

const SENTINEL_NAMES: readonly string[] = ["REDIS_SENTINELS", "REDIS_SENTINEL_MASTER"];

test("with TLS the env carries every name of ENV_NAMES but the Sentinel pair, the CA among them", () => {
  const c = connectionContract(facts);
  expect(Object.keys(c.env).sort()).toEqual(ENV_NAMES.filter((n) => !SENTINEL_NAMES.includes(n)).sort());
  expect(c.env.REDIS_CA_PEM).toBe(CA);
  expect(c.caCertificate).toBe(CA);
  expect(c.env.REDIS_URL).toBe("rediss://app:pw0123456789@10.40.0.10:6379");
});

test("without TLS there is no CA to verify against: REDIS_CA_PEM is absent (not empty), caCertificate empty", () => {
  const c = connectionContract({ ...facts, tls: false });
  expect("REDIS_CA_PEM" in c.env).toBe(false);
  expect(Object.keys(c.env).sort()).toEqual(
    ENV_NAMES.filter((n) => n !== "REDIS_CA_PEM" && !SENTINEL_NAMES.includes(n)).sort(),
  );
  expect(c.caCertificate).toBe("");
  expect(c.env.REDIS_URL).toMatch(/^redis:\/\//);
  expect(CONDITIONAL_ENV_NAMES).toEqual(["REDIS_CA_PEM", ...SENTINEL_NAMES]);
});

test("the Sentinel topology adds its pair (every Sentinel, the master name) and is never cluster mode", () => {
  const sentinel = {
    masterName: "redis-prod",
    sentinels: ["10.40.0.10:26379", "10.40.1.10:26379", "10.40.2.10:26379"],
  };
  const c = connectionContract({ ...facts, clusterMode: false, sentinel });
  expect(Object.keys(c.env).sort()).toEqual([...ENV_NAMES].sort());
  expect(c.env.REDIS_SENTINELS).toBe("10.40.0.10:26379,10.40.1.10:26379,10.40.2.10:26379");
  expect(c.env.REDIS_SENTINEL_MASTER).toBe("redis-prod");
  expect(c.env.REDIS_CLUSTER_MODE).toBe("false");
  expect(() => connectionContract({ ...facts, sentinel })).toThrow(/clusterMode must be false/);
  expect(() => connectionContract({ ...facts, clusterMode: false, sentinel: { ...sentinel, sentinels: [] } })).toThrow(
    /needs its Sentinels/,
  );
});

test("the dotenv file keeps a multi-line CA and shell characters intact when bash sources it", () => {
  const env = { ...connectionContract(facts).env, ODD: 'a"b$HOME`x`\\c' };
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "dotenv-")), "redis.env");
  fs.writeFileSync(file, toDotenv(env));
  const read = (name: string) => {
    const r = spawnSync("bash", ["-c", `set -a; . "$1"; set +a; printf '%s' "$${name}"`, "_", file], {
      encoding: "utf8",
    });
    expect(r.stderr).toBe("");
    return r.stdout;
  };
  expect(read("REDIS_CA_PEM")).toBe(CA);
  expect(read("REDIS_URL")).toBe(env.REDIS_URL);
  expect(read("ODD")).toBe(env.ODD);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  // Single-line values look as they always did.
  expect(toDotenv({ REDIS_TLS: "true", REDIS_CA_PEM: undefined })).toBe('REDIS_TLS="true"\n');
});
