/**
 * The renderers as text: redis.conf per persistence/TLS mode, the systemd unit, and the user-data
 * script checked statically (bash -n, shellcheck). The same script runs for real in tests/integration.
 */
import { execFileSync, spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import { renderRedisConf, EC2_PATHS } from "../../components/ec2/node/redisConf";
import { addressedTopology } from "../../components/ec2/topology";
import {
  renderNodeUserData,
  renderSystemdUnit,
  renderPrepareUnit,
  renderClusterUnit,
  renderNodeEnv,
  ssmShippedScripts,
  SSM_STANDARD_VALUE_MAX,
  shippedScript,
  AWS_CLI_IMDS,
  readScript,
  ssmNames,
  encodeUserData,
  decodeUserData,
  renderMetricsTimer,
  renderBackupTimer,
  renderBackupUnit,
  renderWatchUnit,
  UNITS,
  certificateSha256,
} from "../../components/ec2/node/userData";
import { METRICS_INTERVALS } from "../../components/monitoring/metrics";
import { refusedGrants } from "../../components/ec2/node/appAcl";
import { LIVE_DIRECTIVES } from "../../components/ec2/desired";
import { makePki } from "../../lab/pki";

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
    "aclfile /etc/redis-stack/users.acl",
    "masteruser replication",
    "include /etc/redis-stack/secrets.conf",
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
      "tls-ca-cert-file /etc/redis-stack/tls/ca.crt",
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
      "ExecStart=/usr/bin/redis-server /etc/redis-stack/redis-node.conf",
      "Restart=always",
      "RestartSec=7",
      // Its pidfile's directory; Debian's /run/redis belongs to the package's own (disabled) unit.
      "RuntimeDirectory=redis-node",
      "Requires=redis-node-prepare.service",
      "After=redis-node-prepare.service network-online.target",
    ]),
  );
  expect(renderRedisConf({ ...base }).split("\n")).toContain("pidfile /run/redis-node/redis-node.pid");
});

test("every-boot units: prepare runs before the server, the cluster step after it, both report to the console", () => {
  const prepare = lines(renderPrepareUnit());
  expect(prepare).toEqual(
    expect.arrayContaining([
      "Type=oneshot",
      "RemainAfterExit=yes",
      "Before=redis-node.service",
      "ExecStart=/usr/local/lib/redis-stack/node.sh prepare",
      "StandardOutput=journal+console",
      "WantedBy=multi-user.target",
    ]),
  );
  const clusterUnit = lines(renderClusterUnit(900));
  expect(clusterUnit).toEqual(
    expect.arrayContaining([
      "Type=oneshot",
      "After=redis-node.service",
      "ExecStart=/usr/local/lib/redis-stack/node.sh converge",
      "TimeoutStartSec=1500",
      "StandardOutput=journal+console",
      "WantedBy=multi-user.target",
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
  metrics: { stack: "redis-stack-test", intervalSeconds: 60 },
  backup: { bucket: "redis-test-backups-0a1b2c3", prefix: "redis-stack/test", intervalHours: 6 },
};
/** The CA a TLS node accepts: its SHA-256 (a made-up one; the nodes compare it with what SSM gives them). */
const PIN = { caSha256: "0f".repeat(32) };
const scripts = cluster.map((n, i) => renderNodeUserData(spec, cluster, n, `vol-0${i}abcdef`, i % 2 === 0 && PIN));

test("a TLS node accepts only the stack's CA: the pin is the SHA-256 node.sh computes, and no TLS node renders without one", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ca-pin-"));
  try {
    // Two CAs as the lab makes them (openssl), each in its own directory.
    const ours = makePki(path.join(dir, "ours"), []).caCertPem;
    const theirs = makePki(path.join(dir, "theirs"), []).caCertPem;
    const pin = certificateSha256(ours);
    const problem = (pem: string) =>
      execFileSync(
        "bash",
        [
          "-c",
          `set -euo pipefail; SSM_TLS_CA=/redis-stack/test/tls/ca.crt; TLS_CA_SHA256=${pin}; . "$LIB"; ca_pin_problem "$PEM"`,
        ],
        {
          env: { PATH: process.env.PATH, LIB: path.join(__dirname, "../../components/ec2/node/lib-live.sh"), PEM: pem },
        },
      ).toString();
    expect(problem(ours)).toBe("");
    expect(problem(theirs)).toMatch(
      new RegExp(
        `^the CA in /redis-stack/test/tls/ca.crt \\(SHA-256 [0-9a-f]{16}\\.\\.\\.\\) is not the one this node was created with \\(${pin.slice(0, 16)}\\.\\.\\.\\)\n$`,
      ),
    );
    expect(problem("not a certificate")).toContain("is not the one this node was created with");
    expect(problem("")).toContain("is not the one this node was created with");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  expect(scripts[0]).toContain(`TLS_CA_SHA256='${PIN.caSha256}'`);
  expect(scripts[1]).toContain("TLS_CA_SHA256=''");
  expect(() =>
    renderNodeEnv({
      self: cluster[0],
      cluster,
      region: "eu-west-1",
      dataVolumeId: "vol-0",
      ssm: spec.ssm,
      redisConf: "",
      nodeTimeoutMs: 2000,
      tls: true,
      metrics: spec.metrics,
    }),
  ).toThrow(/TLS needs the CA's SHA-256 to pin/);
});

test("user-data only installs files and units, then hands over to node.sh first-boot", () => {
  const s = scripts[0];
  for (const path of [
    "/etc/redis-stack/node.env",
    "/usr/local/lib/redis-stack/lib-cluster.sh",
    "/usr/local/lib/redis-stack/node.sh",
    "/etc/systemd/system/redis-node-prepare.service",
    "/etc/systemd/system/redis-node.service",
    "/etc/systemd/system/redis-node-cluster.service",
    "/etc/systemd/system/redis-node-metrics.service",
    "/etc/systemd/system/redis-node-metrics.timer",
    "/etc/systemd/system/redis-node-backup.service",
    "/etc/systemd/system/redis-node-backup.timer",
    "/etc/systemd/system/redis-node-watch.service",
  ])
    expect(s).toContain(`cat >${path} <<'REDIS_STACK_FILE_END'`);
  // lib-backup.sh does not fit beside the other scripts: it comes from SSM (below).
  expect(s).not.toContain("cat >/usr/local/lib/redis-stack/lib-backup.sh");
  expect(s.trimEnd().split("\n").pop()).toBe("exec /usr/local/lib/redis-stack/node.sh first-boot");
});

test("node.env is plain bash that yields the node's facts exactly, and no secret", () => {
  const env = renderNodeEnv({
    self: cluster[1],
    cluster,
    region: "eu-west-1",
    dataVolumeId: "vol-0abc",
    ssm: spec.ssm,
    redisConf: 'port 6379\nsave ""\n# it\'s quoted',
    nodeTimeoutMs: 2000,
    tls: true,
    tlsCaSha256: PIN.caSha256,
    metrics: spec.metrics,
    backup: spec.backup,
  });
  const r = spawnSync(
    "bash",
    [
      "-c",
      'set -eu; eval "$ENVFILE"; printf "%s\\0" "$NODE_NAME" "$SSM_STATUS" "$REDIS_CONF" "$CLUSTER_PLAN" "$BACKUP_BUCKET" "$BACKUP_PREFIX" "$BACKUP_INTERVAL_HOURS"',
    ],
    {
      env: { ENVFILE: env, PATH: process.env.PATH },
    },
  );
  expect(r.status).toBe(0);
  const [name, status, conf, plan, bucket, prefix, interval] = r.stdout.toString().split("\0");
  expect(name).toBe(cluster[1].node.name);
  expect(status).toBe(`/redis-stack/test/status/${cluster[1].node.name}`);
  expect(conf).toBe('port 6379\nsave ""\n# it\'s quoted');
  expect(plan.split("\n")).toHaveLength(6);
  expect([bucket, prefix, interval]).toEqual(["redis-test-backups-0a1b2c3", "redis-stack/test", "6"]);
  // Only parameter names: every *PASSWORD* / TLS key variable names an SSM parameter of this stack.
  for (const line of env.split("\n").filter((l) => /^SSM_[A-Z_]+=/.test(l)))
    expect(line).toMatch(/^SSM_[A-Z_]+='\/redis-stack\/test\//);
  expect(env).not.toMatch(/BEGIN .*PRIVATE KEY|masterauth|requirepass/i);
});

test("node.env carries what the node checks the desired settings against: the live directives and the refused grants", () => {
  const env = scripts[0];
  const value = (k: string) =>
    env
      .split("\n")
      .find((l) => l.startsWith(`${k}=`))
      ?.slice(k.length + 1);
  expect(value("LIVE_DIRECTIVES")).toBe(`'${LIVE_DIRECTIVES.join(" ")}'`);
  const refused = (value("APP_ACL_REFUSED") ?? "").replace(/^'|'$/g, "").split(" ");
  expect(refused).toEqual(refusedGrants());
  for (const rule of [
    "+@all",
    "+@admin",
    "+@dangerous",
    "+@keyspace",
    "+config",
    "+config|set",
    "+acl|setuser",
    "+debug",
  ])
    expect(refused).toContain(rule);
  for (const rule of ["+flushdb", "+keys", "+config|get", "+@hash"]) expect(refused).not.toContain(rule);
});

test("every awscli call on a node gets the IMDS settings: node.env sets them, node.sh exports them by name", () => {
  // node.env as the user-data writes it.
  const env = scripts[0];
  for (const [k, v] of Object.entries(AWS_CLI_IMDS)) expect(env.split("\n")).toContain(`${k}='${v}'`);
  const exported = readScript("node.sh")
    .match(/^export (AWS_[A-Z_ ]+)$/m)?.[1]
    .split(" ");
  expect(exported?.sort()).toEqual(Object.keys(AWS_CLI_IMDS).sort());
});

test("metrics.py, lib-backup.sh, lib-live.sh and lib-sentinel.sh ship through SSM: Standard-tier chunks that reassemble to them, named with their SHA-256 in node.env", () => {
  const shipped = ssmShippedScripts(spec.ssm);
  expect(shipped.map((s) => [s.path, s.mode])).toEqual([
    ["/usr/local/lib/redis-stack/metrics.py", "0755"],
    ["/usr/local/lib/redis-stack/lib-backup.sh", "0644"],
    ["/usr/local/lib/redis-stack/lib-live.sh", "0644"],
    ["/usr/local/lib/redis-stack/lib-sentinel.sh", "0644"],
  ]);
  for (const s of shipped) {
    expect(s.chunks.length).toBeGreaterThan(0);
    for (const c of s.chunks) {
      expect(c.value.length).toBeLessThanOrEqual(SSM_STANDARD_VALUE_MAX);
      expect(c.parameter.startsWith(`${spec.ssm.prefix}/scripts/`)).toBe(true);
    }
    const text = zlib.gunzipSync(Buffer.from(s.chunks.map((c) => c.value).join(""), "base64")).toString("utf8");
    expect(text).toBe(shippedScript(s.name));
    expect(createHash("sha256").update(text).digest("hex")).toBe(s.sha256);
    // The user-data names it (path, mode, checksum, parameters) and does not carry it.
    expect(scripts[0]).toContain([s.path, s.mode, s.sha256, ...s.chunks.map((c) => c.parameter)].join(" "));
    expect(scripts[0]).not.toContain(shippedScript(s.name).split("\n").slice(1, 20).join("\n"));
  }
});

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

test("the metrics timer fires on the wall clock's period boundaries (systemd's own calendar parser)", () => {
  for (const interval of METRICS_INTERVALS) {
    const spec = /^OnCalendar=(.*)$/m.exec(renderMetricsTimer(interval))?.[1] ?? "";
    const r = spawnSync("systemd-analyze", ["calendar", spec, "--iterations=3"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    const times = [...r.stdout.matchAll(/(?:Next elapse|Iter\. #\d): \w+ (\S+ \S+) UTC/g)].map((m) =>
      Date.parse(`${m[1].replace(" ", "T")}Z`),
    );
    expect(times).toHaveLength(3);
    expect(times.every((t) => (t / 1000) % interval === 0)).toBe(true);
    expect(times[1] - times[0]).toBe(interval * 1000);
  }
  expect(() => renderMetricsTimer(45)).toThrow(/divide a minute/);
});

test("the watch unit (Redis Cluster): node.sh watch, restarted whenever it ends, sandboxed; node.sh enables it by that name", () => {
  expect(lines(renderWatchUnit())).toEqual(
    expect.arrayContaining([
      "Type=simple",
      "After=redis-node-cluster.service",
      "ExecStart=/usr/local/lib/redis-stack/node.sh watch",
      "Restart=always",
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      "ReadWritePaths=/var/log",
      "WantedBy=multi-user.target",
    ]),
  );
  // node.sh's first boot enables the cluster topology's units by name: the same name as the file written.
  const nodeSh = fs.readFileSync(path.join(__dirname, "../../components/ec2/node/node.sh"), "utf8");
  expect(nodeSh).toMatch(
    new RegExp(`^topology_units\\(\\).*else echo ${UNITS.watch.replace(".", "\\.")}; fi; }$`, "m"),
  );
});

describe("the backup units", () => {
  const timer = (hours: number) => lines(renderBackupTimer(hours));

  test("the service: one scheduled backup through node.sh, sandboxed like the metrics collector, 6 h at most", () => {
    const unit = lines(renderBackupUnit());
    expect(unit).toEqual(
      expect.arrayContaining([
        "Type=oneshot",
        "After=redis-node-cluster.service",
        "ExecStart=/usr/local/lib/redis-stack/node.sh backup scheduled",
        "TimeoutStartSec=6h",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=redis-stack",
        "ReadWritePaths=/var/log /var/lib/redis",
        "PrivateTmp=yes",
      ]),
    );
    // Started by its timer only.
    expect(unit).not.toContain("[Install]");
    expect(UNITS.backup).toBe("redis-node-backup.service");
    expect(UNITS.backupTimer).toBe("redis-node-backup.timer");
  });

  test("every 6 h by default: at 00, 06, 12 and 18 UTC on every node, a missed run made up at boot, no random delay", () => {
    expect(timer(6)).toEqual([
      "[Unit]",
      "Description=Redis node: back up the cluster every 6 h (redis-stack)",
      "",
      "[Timer]",
      "OnCalendar=*-*-* 00/6:00:00 UTC",
      "Persistent=true",
      "RandomizedDelaySec=0",
      "AccuracySec=1s",
      "",
      "[Install]",
      "WantedBy=timers.target",
    ]);
  });

  test("an interval that does not divide a day runs every N hours from the node's boot", () => {
    const t = timer(7);
    expect(t).toEqual(expect.arrayContaining(["OnActiveSec=7h", "OnUnitActiveSec=7h", "WantedBy=timers.target"]));
    expect(t.some((l) => l.startsWith("OnCalendar=") || l.startsWith("Persistent="))).toBe(false);
  });

  test("0: the timer is written with no trigger and no [Install], so nothing enables or starts it", () => {
    const t = timer(0);
    expect(t.join("\n")).toMatch(/scheduled backups are off \(backupIntervalHours 0\)/);
    expect(t.filter((l) => /^On[A-Za-z]+=/.test(l))).toEqual([]);
    expect(t).not.toContain("[Install]");
    // node.env says so too: node.sh enables the timer only above 0.
    const off = renderNodeUserData(
      { ...spec, backup: { ...spec.backup, intervalHours: 0 } },
      cluster,
      cluster[0],
      "vol-0",
      PIN,
    );
    expect(off).toContain("BACKUP_INTERVAL_HOURS='0'");
    expect(off).toContain(renderBackupTimer(0));
    // Without a backup spec (a renderer's caller with no bucket): no bucket, no schedule.
    const none = renderNodeUserData({ ...spec, backup: undefined }, cluster, cluster[0], "vol-0", PIN);
    expect(none).toContain("BACKUP_BUCKET=''");
    expect(none).toContain("BACKUP_INTERVAL_HOURS='0'");
  });
});
