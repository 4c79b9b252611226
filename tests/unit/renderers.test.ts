/**
 * The renderers as text: redis.conf per persistence/TLS mode, the systemd unit, and the user-data
 * script checked statically (bash -n, shellcheck). The same script runs for real in tests/integration.
 */
import { execFileSync, spawnSync } from "child_process";
import { renderRedisConf, EC2_PATHS } from "../../components/redisConf";
import { addressedTopology } from "../../components/topology";
import {
  renderNodeUserData,
  renderSystemdUnit,
  ssmNames,
  encodeUserData,
  decodeUserData,
} from "../../components/userData";

const base = {
  announceIp: "10.0.0.10",
  port: 6379,
  nodeTimeoutMs: 2000,
  maxmemoryBytes: 1 << 30,
  maxmemoryPolicy: "allkeys-lru" as const,
  persistence: "aof+rdb" as const,
  tls: false,
  paths: EC2_PATHS,
};
const lines = (text: string) => text.split("\n");

test("redis.conf: cluster, AOF everysec + RDB, maxmemory, ACL file, no secret", () => {
  const conf = lines(renderRedisConf(base));
  for (const l of [
    "cluster-enabled yes",
    "cluster-config-file /var/lib/redis/nodes.conf",
    "cluster-node-timeout 2000",
    "cluster-announce-ip 10.0.0.10",
    "appendonly yes",
    "appendfsync everysec",
    "aof-use-rdb-preamble yes",
    "save 900 1 300 10 60 10000",
    "maxmemory 1073741824",
    "maxmemory-policy allkeys-lru",
    "aclfile /etc/redis/users.acl",
    "masteruser admin",
    "include /etc/redis/secrets.conf",
    "port 6379",
    "dir /var/lib/redis",
  ]) {
    expect(conf).toContain(l);
  }
  expect(conf.filter((l) => /^(requirepass|masterauth)/.test(l))).toEqual([]);
  expect(conf.some((l) => l.startsWith("tls-"))).toBe(false);
});

test("redis.conf: persistence modes and TLS", () => {
  expect(lines(renderRedisConf({ ...base, persistence: "aof" }))).toEqual(
    expect.arrayContaining(["appendonly yes", 'save ""']),
  );
  expect(lines(renderRedisConf({ ...base, persistence: "rdb" }))).toEqual(
    expect.arrayContaining(["appendonly no", "save 900 1 300 10 60 10000"]),
  );
  expect(lines(renderRedisConf({ ...base, persistence: "none" }))).toEqual(
    expect.arrayContaining(["appendonly no", 'save ""']),
  );
  const tls = lines(renderRedisConf({ ...base, tls: true }));
  expect(tls).toEqual(
    expect.arrayContaining([
      "port 0",
      "tls-port 6379",
      "tls-cluster yes",
      "tls-replication yes",
      "tls-auth-clients optional",
      "tls-ca-cert-file /etc/redis/tls/ca.crt",
    ]),
  );
  expect(tls).not.toContain("port 6379");
});

test("systemd unit: refuses to start without the data volume; restarts only after a failover could happen", () => {
  const unit = lines(renderSystemdUnit(2000));
  expect(unit).toEqual(
    expect.arrayContaining([
      "User=redis",
      "ExecStartPre=/usr/bin/mountpoint -q /var/lib/redis",
      "ExecStart=/usr/bin/redis-server /etc/redis/redis-node.conf",
      "Restart=always",
      "RestartSec=7",
      "RequiresMountsFor=/var/lib/redis",
    ]),
  );
});

const cluster = addressedTopology(3, 1, ["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"], 10, 6379);
const spec = {
  nodeTimeoutMs: 2000,
  maxmemoryBytes: 1 << 30,
  maxmemoryPolicy: "allkeys-lru" as const,
  persistence: "aof+rdb" as const,
  region: "eu-west-1",
  ssm: ssmNames("redis-stack", "test"),
};
const scripts = cluster.map((n, i) => renderNodeUserData(spec, cluster, n, `vol-0${i}abcdef`, i % 2 === 0));

test("user-data round-trips through gzip+base64 unchanged", () => {
  for (const s of scripts) expect(decodeUserData(encodeUserData(s))).toBe(s);
});

test("user-data is valid bash (bash -n)", () => {
  for (const s of scripts) {
    const r = spawnSync("bash", ["-n"], { input: s });
    expect(r.stderr.toString()).toBe("");
    expect(r.status).toBe(0);
  }
});

const hasShellcheck = spawnSync("shellcheck", ["--version"]).status === 0;
if (!hasShellcheck)
  console.log(
    `shellcheck not installed: ${process.env.CI === "true" ? "failing (CI must have it)" : "skipping the lint test (apt-get install shellcheck)"}`,
  );
(hasShellcheck || process.env.CI === "true" ? test : test.skip)("user-data is clean under shellcheck", () => {
  for (const s of scripts) {
    const out = (() => {
      try {
        return execFileSync("shellcheck", ["-s", "bash", "-"], { input: s }).toString();
      } catch (e) {
        return String((e as { stdout?: Buffer }).stdout ?? e);
      }
    })();
    expect(out).toBe("");
  }
});
