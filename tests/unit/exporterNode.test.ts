/**
 * The Prometheus exporter on a node, as far as this machine can check it: its facts reach node.sh through
 * node.env from components/ec2/node/redisConf.ts; node.sh passes it only flags that Debian's 1.45 takes; the
 * `monitor` user's ACL (written by node.sh's own acl_user) lets a real redis-server run exactly the commands
 * the exporter sends with those flags and nothing else; and the lab's mirror holds every package node.sh
 * installs. The exporter itself runs on the lab's hosts (tests/integration).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { EXPORTER_PORT, MONITOR_ACL_RULES, MONITOR_USER } from "../../components/ec2/node/redisConf";
import { addressedTopology } from "../../components/ec2/topology";
import { readScript, renderNodeEnv, ssmNames } from "../../components/ec2/node/userData";
import { MIRROR_PACKAGES } from "../../lab/hosts/rootfs";

const nodeSh = readScript("node.sh");
/** A function of node.sh, as bash source. */
const shellFunction = (name: string): string => {
  const m = new RegExp(`^${name}\\(\\) \\{[\\s\\S]*?^\\}$`, "m").exec(nodeSh);
  if (!m) throw new Error(`node.sh has no function ${name}`);
  return m[0];
};

test("node.env carries the monitor user, its ACL rules, its password's SSM name and the exporter's port", () => {
  const cluster = addressedTopology(3, 1, ["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"], 10, 6379);
  const env = renderNodeEnv({
    self: cluster[0],
    cluster,
    region: "eu-west-1",
    dataVolumeId: "vol-0abc",
    ssm: ssmNames("redis-stack", "test"),
    redisConf: "port 6379",
    nodeTimeoutMs: 2000,
    tls: true,
    tlsCaSha256: "0f".repeat(32),
    metrics: { stack: "redis-stack-test", intervalSeconds: 60 },
  });
  const r = spawnSync(
    "bash",
    [
      "-c",
      'set -eu; eval "$ENVFILE"; printf "%s\\0" "$MONITOR_USER" "$MONITOR_ACL_RULES" "$SSM_MONITOR_PASSWORD" "$EXPORTER_PORT"',
    ],
    { env: { ENVFILE: env, PATH: process.env.PATH }, encoding: "utf8" },
  );
  expect(r.status).toBe(0);
  expect(r.stdout.split("\0").slice(0, 4)).toEqual([
    MONITOR_USER,
    MONITOR_ACL_RULES,
    "/redis-stack/test/monitor-password",
    String(EXPORTER_PORT),
  ]);
});

test("node.sh passes the exporter only flags its 1.45 takes, with the port and user from node.env", () => {
  const help = fs.readFileSync(path.join(__dirname, "fixtures/redis-exporter-1.45.help.txt"), "utf8");
  const known = new Set([...help.matchAll(/^ {2}-([a-z0-9.-]+)/gm)].map((m) => m[1]));
  expect(known.size).toBeGreaterThan(30);
  const fn = shellFunction("write_exporter_config");
  const flags = [...fn.matchAll(/--([a-z0-9.-]+)=/g)].map((m) => m[1]);
  expect(flags.sort()).toEqual(
    [
      "config-command",
      "redis.addr",
      "redis.password-file",
      "redis.user",
      "set-client-name",
      "tls-ca-cert-file",
      "web.listen-address",
    ].sort(),
  );
  for (const f of flags) expect([f, known.has(f)]).toEqual([f, true]);
  expect(fn).toContain("--web.listen-address=:$EXPORTER_PORT");
  expect(fn).toContain("--redis.user=$MONITOR_USER");
  // No client key: the node's TLS key stays readable by root and redis only.
  expect(fn).not.toMatch(/tls-client-(key|cert)-file|\$TLS_KEY/);
});

test("the packages node.sh installs are all in the lab's Debian mirror", () => {
  const fn = shellFunction("install_packages");
  const vars = new Map([...nodeSh.matchAll(/^readonly ([A-Z_]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
  const installed = [...fn.matchAll(/missing\+=\("?([^)"]+)"?\)/g)].map((m) =>
    m[1].replace(/^\$([A-Z_]+)$/, (_x, v: string) => vars.get(v) ?? v),
  );
  expect(installed).toContain("prometheus-redis-exporter");
  // python3 comes with the image (cloud-init needs it), as it does with Debian's AMI.
  expect([...MIRROR_PACKAGES].sort()).toEqual(installed.filter((p) => p !== "python3").sort());
});

describe("the monitor user on a real redis-server (ACL DRYRUN)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "monitor-acl-"));
  const port = 19000 + (process.pid % 1000);
  const adminPass = "acl-test-admin-password";
  const monitorPass = "acltestmonitorpassword";
  const cli = (user: string, pass: string, ...args: string[]) =>
    spawnSync("redis-cli", ["-p", String(port), "--user", user, ...args], {
      env: { ...process.env, REDISCLI_AUTH: pass },
      encoding: "utf8",
    });
  const dryrun = (...command: string[]) =>
    cli("admin", adminPass, "acl", "dryrun", MONITOR_USER, ...command).stdout.trim();

  beforeAll(async () => {
    // The ACL file as node.sh writes it (refresh_secrets through acl_user).
    const acl = spawnSync(
      "bash",
      [
        "-c",
        `set -euo pipefail; ${shellFunction("acl_user")}; echo "user default off"; ` +
          'acl_user admin "$ADMIN_PASS" "~* &* +@all"; acl_user "$MONITOR_USER" "$MONITOR_PASS" "$MONITOR_ACL_RULES"',
      ],
      {
        env: {
          PATH: process.env.PATH,
          ADMIN_PASS: adminPass,
          MONITOR_PASS: monitorPass,
          MONITOR_USER,
          MONITOR_ACL_RULES,
        },
        encoding: "utf8",
      },
    );
    expect(acl.status).toBe(0);
    expect(acl.stdout).not.toContain(monitorPass);
    fs.writeFileSync(path.join(dir, "users.acl"), acl.stdout);
    const r = spawnSync("redis-server", [
      ...["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"],
      ...["--aclfile", path.join(dir, "users.acl"), "--daemonize", "yes", "--pidfile", `${dir}/redis.pid`],
    ]);
    expect(r.status).toBe(0);
    for (let i = 0; i < 50; i++) {
      if (cli("admin", adminPass, "ping").stdout.trim() === "PONG") break;
      await new Promise((res) => setTimeout(res, 100));
    }
  });

  afterAll(() => {
    cli("admin", adminPass, "shutdown", "nosave");
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("it authenticates with its password and may run exactly what the exporter sends", () => {
    expect(cli(MONITOR_USER, monitorPass, "info", "server").stdout).toContain("redis_version:");
    // exporter/exporter.go scrapeRedisHost, latency.go and slowlog.go at v1.45.0, with node.sh's flags
    // (`--config-command=INFO` turns CONFIG GET * into INFO GET *, which answers nothing).
    for (const command of [
      ["info", "all"],
      ["info"],
      ["info", "get", "*"],
      ["cluster", "info"],
      ["latency", "latest"],
      ["slowlog", "len"],
      ["slowlog", "get", "1"],
    ])
      expect([command.join(" "), dryrun(...command)]).toEqual([command.join(" "), "OK"]);
  });

  test("nothing else: no CONFIG (it would reveal masterauth), no client, key, channel or admin command", () => {
    for (const command of [
      ["config", "get", "*"],
      ["client", "setname", "redis_exporter"],
      ["client", "list"],
      ["ping"],
      ["get", "k"],
      ["set", "k", "v"],
      ["scan", "0"],
      ["keys", "*"],
      ["dbsize"],
      ["select", "0"],
      ["eval", "return 1", "0"],
      ["subscribe", "c"],
      ["cluster", "nodes"],
      ["cluster", "failover"],
      ["latency", "histogram"],
      ["slowlog", "reset"],
      ["acl", "list"],
      ["monitor"],
      ["flushall"],
    ])
      expect(dryrun(...command)).toMatch(/^This user has no permissions/);
  });
});
