/**
 * The node's metrics collector (components/ec2/node/metrics.py) on this machine: it publishes exactly the
 * metrics components/monitoring/metrics.ts lists, reads node.env as bash does, still parses once the user-data has
 * stripped its comments, and turns a real redis-server's counters into the right figures (dry run: the
 * MetricData it would publish). The hosts' lab runs it under systemd against the lab's CloudWatch.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { METRICS_NAMESPACE, NODE_METRICS } from "../../components/monitoring/metrics";
import { addressedTopology } from "../../components/ec2/topology";
import { renderNodeEnv, SCRIPTS_DIR, shippedScript, ssmNames } from "../../components/ec2/node/userData";

const COLLECTOR = path.join(SCRIPTS_DIR, "metrics.py");

function python(args: string[], input?: string): string {
  // -B: no __pycache__ next to the scripts.
  const r = spawnSync("python3", ["-B", ...args], { input, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`python3 ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

interface Datum {
  MetricName: string;
  Dimensions: { Name: string; Value: string }[];
  Value: number;
  Unit: string;
  StorageResolution: number;
}

test("the collector publishes exactly NODE_METRICS, with their units and stack-wide copies", () => {
  const described = JSON.parse(python([COLLECTOR, "--describe"])) as Record<
    string,
    { unit: string; stackWide: boolean }
  >;
  expect(Object.keys(described).sort()).toEqual(NODE_METRICS.map((m) => m.name).sort());
  for (const m of NODE_METRICS) expect(described[m.name]).toEqual({ unit: m.unit, stackWide: m.stackWide === true });
});

test("the shipped collector (comments stripped for the user-data) still compiles", () => {
  const shipped = shippedScript("metrics.py");
  expect(shipped.startsWith("#!/usr/bin/python3\n")).toBe(true);
  expect(shipped.split("\n").filter((l) => /^\s*#/.test(l))).toEqual(["#!/usr/bin/python3"]);
  python(["-c", "import sys; compile(sys.stdin.read(), 'metrics.py', 'exec')"], shipped);
});

test("the collector reads node.env exactly as bash does (multi-line, quoted values)", () => {
  const cluster = addressedTopology(3, 1, ["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"], 10, 6379);
  const env = renderNodeEnv({
    self: cluster[2],
    cluster,
    region: "eu-west-1",
    dataVolumeId: "vol-0abc",
    ssm: ssmNames("redis-stack", "test"),
    redisConf: 'port 6379\nsave ""\n# it\'s quoted',
    nodeTimeoutMs: 2000,
    tls: false,
    metrics: { stack: "redis-stack-test", intervalSeconds: 10 },
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "metrics-env-"));
  const file = path.join(dir, "node.env");
  fs.writeFileSync(file, env);
  const fromPython = JSON.parse(
    python([
      "-c",
      `import sys, json; sys.path.insert(0, ${JSON.stringify(SCRIPTS_DIR)}); import metrics; print(json.dumps(metrics.read_env(${JSON.stringify(file)})))`,
    ]),
  ) as Record<string, string>;
  const names = [...env.matchAll(/^([A-Z0-9_]+)=/gm)].map((m) => m[1]);
  const fromBash = spawnSync(
    "bash",
    ["-c", `set -eu; . ${file}; for n in ${names.join(" ")}; do printf '%s\\0' "\${!n}"; done`],
    {
      encoding: "utf8",
    },
  ).stdout.split("\0");
  expect(Object.keys(fromPython)).toEqual(names);
  names.forEach((n, i) => expect(fromPython[n]).toBe(fromBash[i]));
  expect(fromPython.METRICS_STACK).toBe("redis-stack-test");
  expect(fromPython.METRICS_NAMESPACE).toBe(METRICS_NAMESPACE);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("against a real redis-server (cluster mode, one master with every slot)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "metrics-redis-"));
  const port = 17000 + (process.pid % 2000);
  const pass = "collector-test-password";
  const cli = (...args: string[]) => {
    const r = spawnSync("redis-cli", ["-p", String(port), "--user", "admin", ...args], {
      env: { ...process.env, REDISCLI_AUTH: pass },
      encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(r.stderr);
    return r.stdout.trim();
  };
  const collect = (): Datum[] =>
    JSON.parse(
      python([
        COLLECTOR,
        "--dry-run",
        ...[
          "--env",
          path.join(dir, "node.env"),
          "--state",
          path.join(dir, "state.json"),
          "--log",
          path.join(dir, "log"),
        ],
      ]),
    ) as Datum[];
  const valueOf = (data: Datum[], name: string, dims = 3): number | undefined =>
    data.find((d) => d.MetricName === name && d.Dimensions.length === dims)?.Value;

  beforeAll(async () => {
    fs.writeFileSync(path.join(dir, "admin.pass"), pass, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, "users.acl"), `user default off\nuser admin on >${pass} ~* &* +@all\n`);
    fs.writeFileSync(
      path.join(dir, "node.env"),
      [
        "NODE_NAME='shard0-0'",
        "NODE_SHARD='0'",
        "NODE_IP='127.0.0.1'",
        `REDIS_PORT='${port}'`,
        "AWS_REGION='eu-west-1'",
        "ADMIN_USER='admin'",
        `ADMIN_PASS_FILE='${dir}/admin.pass'`,
        "TLS='no'",
        `DATA_DIR='${dir}'`,
        `METRICS_NAMESPACE='${METRICS_NAMESPACE}'`,
        "METRICS_STACK='redis-stack-test'",
        "METRICS_INTERVAL_SECONDS='10'",
      ].join("\n"),
    );
    const r = spawnSync("redis-server", [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--cluster-enabled",
      "yes",
      "--cluster-config-file",
      `${dir}/nodes.conf`,
      "--save",
      "",
      "--appendonly",
      "no",
      "--maxmemory",
      "100mb",
      "--aclfile",
      path.join(dir, "users.acl"),
      "--daemonize",
      "yes",
      "--pidfile",
      `${dir}/redis.pid`,
    ]);
    expect(r.status).toBe(0);
    for (let i = 0; i < 50; i++) {
      if (spawnSync("redis-cli", ["-p", String(port), "ping"]).status === 0) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    cli("cluster", "addslotsrange", "0", "16383");
    for (let i = 0; i < 50 && !cli("cluster", "info").includes("cluster_state:ok"); i++)
      await new Promise((res) => setTimeout(res, 100));
  });

  afterAll(() => {
    spawnSync("redis-cli", ["-p", String(port), "--user", "admin", "shutdown", "nosave"], {
      env: { ...process.env, REDISCLI_AUTH: pass },
    });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("the first run has gauges only; the next one has the period's hit rate, rates and latency", async () => {
    const first = collect();
    expect(valueOf(first, "Up")).toBe(1);
    expect(valueOf(first, "ClusterStateOk")).toBe(1);
    expect(valueOf(first, "ClusterStateOk", 1)).toBe(1);
    expect(valueOf(first, "MastersSeen")).toBe(1);
    expect(valueOf(first, "IsMaster")).toBe(1);
    expect(valueOf(first, "RoleChanged")).toBe(0);
    expect(valueOf(first, "HitRate")).toBeUndefined();
    expect(valueOf(first, "OpsPerSecond")).toBeUndefined();
    expect(first.every((d) => d.StorageResolution === 1)).toBe(true);
    const dims = first.find((d) => d.MetricName === "UsedMemory")?.Dimensions;
    expect(dims).toEqual([
      { Name: "Stack", Value: "redis-stack-test" },
      { Name: "Shard", Value: "0" },
      { Name: "Node", Value: "shard0-0" },
    ]);

    // A known mix: 150 hits and 50 misses -> 75 % hit rate in this period, whatever came before.
    const script = [
      ...Array.from({ length: 50 }, (_, i) => `SET k${i} v`),
      ...Array.from({ length: 150 }, (_, i) => `GET k${i % 50}`),
      ...Array.from({ length: 50 }, (_, i) => `GET missing${i}`),
    ].join("\n");
    const r = spawnSync("redis-cli", ["-p", String(port), "--user", "admin"], {
      input: script,
      env: { ...process.env, REDISCLI_AUTH: pass },
      encoding: "utf8",
    });
    expect(r.status).toBe(0);
    await new Promise((res) => setTimeout(res, 1100));
    const second = collect();
    expect(valueOf(second, "HitRate")).toBe(75);
    expect(valueOf(second, "OpsPerSecond")).toBeGreaterThan(0);
    const p = ["LatencyP50", "LatencyP95", "LatencyP99", "LatencyP999"].map((n) => valueOf(second, n) ?? NaN);
    expect(p.every((x) => x > 0)).toBe(true);
    expect([...p].sort((a, b) => a - b)).toEqual(p);
    const used = Number(/used_memory:(\d+)/.exec(cli("info", "memory"))?.[1]);
    expect(Math.abs((valueOf(second, "UsedMemory") ?? 0) - used) / used).toBeLessThan(0.1);
    expect(valueOf(second, "MemoryPercentOfMaxmemory")).toBeCloseTo(
      (100 * (valueOf(second, "UsedMemory") ?? 0)) / (100 * 1024 * 1024),
      1,
    );
    expect(valueOf(second, "DataDiskUsedPercent")).toBeGreaterThan(0);

    // No traffic in the third period: no hit rate (no reads), no latency figures, zero data ops.
    const third = collect();
    expect(valueOf(third, "HitRate")).toBeUndefined();
    expect(valueOf(third, "LatencyP99")).toBeUndefined();
  });

  test("RoleChanged: a serving master that was a replica is a failover; a node that was an empty master is not", () => {
    const stateFile = path.join(dir, "state.json");
    const state = JSON.parse(fs.readFileSync(stateFile, "utf8")) as Record<string, unknown>;
    expect(state.role).toBe("master");
    fs.writeFileSync(stateFile, JSON.stringify({ ...state, role: "replica" }));
    expect(valueOf(collect(), "RoleChanged")).toBe(1);
    expect(valueOf(collect(), "RoleChanged")).toBe(0);
    // A booting node is an empty master before it replicates or gets slots.
    fs.writeFileSync(stateFile, JSON.stringify({ ...state, role: "empty" }));
    expect(valueOf(collect(), "RoleChanged")).toBe(0);
  });

  test("a restarted Redis (new run_id) does not produce negative or bogus rates", () => {
    const state = JSON.parse(fs.readFileSync(path.join(dir, "state.json"), "utf8")) as { run_id: string };
    fs.writeFileSync(path.join(dir, "state.json"), JSON.stringify({ ...state, run_id: "another-run" }));
    const after = collect();
    expect(valueOf(after, "OpsPerSecond")).toBeUndefined();
    expect(valueOf(after, "Up")).toBe(1);
  });

  test("TLS on: TlsCertDaysLeft is the days left of the certificate Redis loads, per node and stack-wide; an unreadable one is left out and logged", () => {
    const env = fs.readFileSync(path.join(dir, "node.env"), "utf8");
    const cert = path.join(dir, "node.crt");
    const made = spawnSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "/dev/null"].concat(
        ["-subj", "/CN=shard0-0", "-days", "45", "-out", cert],
      ),
      { encoding: "utf8" },
    );
    expect(made.status).toBe(0);
    // TLS on points the collector's Redis client at TLS too; only the certificate's figure matters here.
    fs.writeFileSync(
      path.join(dir, "node.env"),
      env.replace("TLS='no'", `TLS='yes'\nTLS_CERT='${cert}'\nTLS_CA='${cert}'\nTLS_KEY='${cert}'`),
    );
    try {
      const data = collect();
      expect(valueOf(data, "TlsCertDaysLeft")).toBeGreaterThan(44.9);
      expect(valueOf(data, "TlsCertDaysLeft")).toBeLessThanOrEqual(45);
      expect(valueOf(data, "TlsCertDaysLeft", 1)).toBe(valueOf(data, "TlsCertDaysLeft"));
      fs.writeFileSync(cert, "not a certificate\n");
      expect(valueOf(collect(), "TlsCertDaysLeft")).toBeUndefined();
      expect(fs.readFileSync(path.join(dir, "log"), "utf8")).toContain(
        `cannot read the certificate's expiry from ${cert}`,
      );
    } finally {
      fs.writeFileSync(path.join(dir, "node.env"), env);
    }
    // TLS off: no such metric.
    expect(valueOf(collect(), "TlsCertDaysLeft")).toBeUndefined();
  });

  test("Redis down: the node still reports, and its cluster state reads 0 (the safe reading)", () => {
    const env = fs.readFileSync(path.join(dir, "node.env"), "utf8");
    fs.writeFileSync(path.join(dir, "node.env"), env.replace(`REDIS_PORT='${port}'`, "REDIS_PORT='1'"));
    try {
      const down = collect();
      expect(valueOf(down, "Up")).toBe(1);
      expect(valueOf(down, "ClusterStateOk")).toBe(0);
      expect(valueOf(down, "ClusterStateOk", 1)).toBe(0);
    } finally {
      fs.writeFileSync(path.join(dir, "node.env"), env);
    }
  });
});
