/**
 * The cluster forms for real. Six Debian 12 hosts boot the exact gzip'd user-data the EC2 component renders
 * for the prod stack (TLS on, as Pulumi.prod.yaml says) through real cloud-init under real systemd; apt
 * installs Redis and awscli from the lab's mirror; awscli reads the secrets from the lab's AWS endpoint,
 * which enforces the stack's node role policy. Only AWS's own APIs are stood in.
 */
import * as path from "path";
import { APP_ACL_RULES, EC2_PATHS, nodeFiles } from "../../components/ec2/node/redisConf";
import { describeLab } from "../../lab/hosts/hostLab";
import { stackSettings } from "../../lab/stackFiles";
import { CloudInitResult } from "../../lab/hosts/hostLab";
import {
  AZS,
  ClusterLab,
  createClusterLab,
  infoField,
  masterOfSlot,
  parseClusterNodes,
  waitHealthyFromClient,
} from "../../lab/clusterLab";
import { metricsScenarios } from "./metricsScenarios";
import { labContractEnv, TS_NODE_ENV } from "./clientScenarios";
import { NODE_SCRIPT, ssmShippedScripts } from "../../components/ec2/node/userData";
import { MetricsInterval } from "../../components/monitoring/metrics";

const settings = stackSettings("prod");
/** The nodes' metrics period in this lab (the shortest the stack allows, so the metrics tests are quick). */
const METRICS_PERIOD: MetricsInterval = 10;

/** The view from `from` is the plan: masters with their slot ranges, each replica on its planned master in another AZ. */
async function expectPlannedTopology(c: ClusterLab, from: string): Promise<void> {
  const lines = parseClusterNodes((await c.cli(from, ["cluster", "nodes"])).stdout);
  const byAddr = new Map(lines.map((l) => [l.addr, l]));
  for (const n of c.nodes) {
    const line = byAddr.get(`${n.ip}:${n.port}`);
    expect(line).toBeDefined();
    if (!line) continue;
    if (n.node.role === "master") {
      expect(line.flags).toContain("master");
      expect(line.slots).toEqual([`${n.node.slots.start}-${n.node.slots.end}`]);
    } else {
      const planned = c.nodes[n.node.masterIndex ?? -1];
      expect(line.flags).toContain("slave");
      expect(line.masterId).toBe(byAddr.get(`${planned.ip}:${planned.port}`)?.id);
      expect(AZS[n.node.azIndex]).not.toBe(AZS[planned.node.azIndex]);
    }
  }
  expect(
    lines
      .filter((l) => l.flags.includes("master"))
      .map((l) => l.slots.join(" "))
      .sort(),
  ).toEqual(["0-5460", "10923-16383", "5461-10922"]);
  // Each master has exactly one replica.
  for (const m of lines.filter((l) => l.flags.includes("master")))
    expect(lines.filter((l) => l.masterId === m.id)).toHaveLength(1);
}

/** An app's commands through one client library (lab/mixedWorkload.ts), run on the lab's client network. */
const MIXED_WORKLOAD = path.resolve(__dirname, "../../lab/mixedWorkload.ts");

describeLab("prod cluster from rendered user-data", () => {
  let c: ClusterLab;
  let boots: CloudInitResult[] = [];
  const bootLog = async (i: number) => (await c.hosts[i].sh("cat /var/log/redis-stack.log")).stdout;

  beforeAll(async () => {
    c = await createClusterLab(settings, { log: (l) => console.log(l), metricsIntervalSeconds: METRICS_PERIOD });
    const started = Date.now();
    boots = await c.boot();
    console.log(`six hosts from first boot to cloud-init done: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    for (const [i, r] of boots.entries())
      if (r.status !== "done") console.log(`cloud-init on ${c.nodes[i].node.name}: ${r.detail}\n${r.output}`);
    await c.waitConverged(60_000);
  }, 900_000);
  afterAll(async () => c?.destroy());

  test("cloud-init ran every node's user-data to the end", () => {
    expect(boots.map((b) => b.status)).toEqual(["done", "done", "done", "done", "done", "done"]);
    for (const b of boots) expect(b.output).toMatch(/first boot of \S+ done/);
  });

  test("redis-server and awscli came from Debian packages through real apt", async () => {
    const r = await c.hosts[0].sh("dpkg-query -W -f='${Package} ${Version}\\n' redis-server redis-tools awscli");
    expect(r.stdout).toMatch(/^redis-server 5:7\.0\.\d+/m);
    expect(r.stdout).toMatch(/^awscli \d/m);
    expect((await c.hosts[0].sh("redis-server --version")).stdout).toMatch(/v=7\.0\./);
  });

  test("the Session Manager agent is tried first thing, and its absence (no S3 in the lab) never stops Redis", async () => {
    const region = settings.ec2?.region;
    expect(region).toBe("us-east-1");
    const arch = (await c.hosts[0].sh("dpkg --print-architecture")).stdout.trim();
    const url = `https://s3.${region}.amazonaws.com/amazon-ssm-${region}/latest/debian_${arch}/amazon-ssm-agent.deb`;
    for (const [i, b] of boots.entries()) {
      const out = b.output;
      expect(out).toContain(`warning: could not install amazon-ssm-agent from ${url}`);
      // Before the packages: even a node whose Redis set-up fails would be reachable.
      expect(out.indexOf("amazon-ssm-agent")).toBeLessThan(out.indexOf("installing redis-server"));
      // ...and the node still took its place in the cluster (a master may already have been added by node 0).
      expect(await bootLog(i)).toMatch(
        /part of the cluster|already a cluster member|joined: replica|slot plan verified/,
      );
    }
  });

  test("every node published ok to its SSM status parameter, from its own instance", async () => {
    const params = await c.aws.parameters();
    for (const [i, n] of c.nodes.entries()) {
      const p = params.find((x) => x.name === c.ssm.status(n.node.name));
      expect(p).toBeDefined();
      const status = JSON.parse(p?.value ?? "{}") as { state: string; instance: string; detail: string };
      expect({ node: n.node.name, state: status.state, instance: status.instance }).toEqual({
        node: n.node.name,
        state: "ok",
        instance: c.hosts[i].instanceId,
      });
      expect(status.detail).toBe("cluster_state:ok");
    }
  });

  test("pulumi up's health wait, run with the AWS SDK against the lab's endpoint, sees the cluster healthy", async () => {
    const r = await waitHealthyFromClient(c, 60);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ healthy: true, failed: [], waiting: [] });
  });

  test("systemd runs the server: its pidfile (in the unit's own runtime dir) names the unit's main process", async () => {
    const h = c.hosts[1];
    const main = (await h.sh("systemctl show -p MainPID --value redis-node")).stdout.trim();
    expect(main).toMatch(/^[1-9]\d*$/);
    expect((await h.sh("cat /run/redis-node/redis-node.pid")).stdout.trim()).toBe(main);
    expect(
      (await h.sh("systemctl is-enabled redis-node-prepare redis-node redis-node-cluster")).stdout.trim().split("\n"),
    ).toEqual(["enabled", "enabled", "enabled"]);
    // Debian's own unit (a standalone server on 127.0.0.1) stays off.
    expect((await h.sh("systemctl is-active redis-server")).stdout.trim()).not.toBe("active");
  });

  test("the user-data that formed this cluster carries no password and no private key", () => {
    const keys = [...(c.pki?.nodes.values() ?? [])].map((n) => n.keyPem.trim().split("\n")[1]);
    expect(keys).toHaveLength(6);
    for (const ud of c.userData) {
      expect(ud).not.toContain(c.passwords.app);
      expect(ud).not.toContain(c.passwords.admin);
      expect(ud).not.toContain("PRIVATE KEY");
      for (const k of keys) expect(ud).not.toContain(k);
    }
  });

  test("metrics.py came from SSM, checked against the user-data's SHA-256; a wrong checksum is refused, naming the fix", async () => {
    const [script] = ssmShippedScripts(c.ssm);
    for (const [i, h] of c.hosts.entries()) {
      expect(c.userData[i]).not.toContain("def main(argv: List[str])");
      expect((await h.sh(`sha256sum <${script.path} | cut -d' ' -f1`)).stdout.trim()).toBe(script.sha256);
      expect((await h.sh(`grep -c 'installed ${script.path} from SSM' /var/log/redis-stack.log`)).stdout.trim()).toBe(
        "1",
      );
    }
    // node.sh's installer alone (sourced, so no status is published), into a scratch path.
    const install = (sha: string) =>
      c.hosts[0].sh(
        `rm -f /tmp/probe; . ${NODE_SCRIPT}; SHIPPED_SCRIPTS="/tmp/probe 0755 ${sha} ${script.chunks.map((k) => k.parameter).join(" ")}"; install_shipped_scripts`,
      );
    const wrong = await install("0".repeat(64));
    expect(wrong.code).not.toBe(0);
    expect(wrong.stdout).toContain(
      `FATAL: /tmp/probe from SSM has SHA-256 ${script.sha256}, this node's user-data expects ${"0".repeat(64)}`,
    );
    expect(wrong.stdout).toMatch(/run pulumi up again, or replace the node/);
    expect((await c.hosts[0].sh("test -e /tmp/probe")).code).not.toBe(0);
    const right = await install(script.sha256);
    expect(right.code).toBe(0);
    expect((await c.hosts[0].sh(`stat -c %a /tmp/probe; cmp /tmp/probe ${script.path} && echo same`)).stdout).toBe(
      "755\nsame\n",
    );
  });

  test("secrets on the node are readable by root and redis only, and stay out of the boot log", async () => {
    const h = c.hosts[0];
    const modes = (
      await h.sh(
        "stat -c '%a %U:%G %n' /etc/redis-stack/users.acl /etc/redis-stack/secrets.conf /etc/redis-stack/admin.pass /etc/redis-stack/tls/node.key",
      )
    ).stdout
      .trim()
      .split("\n");
    expect(modes).toEqual([
      "640 root:redis /etc/redis-stack/users.acl",
      "640 root:redis /etc/redis-stack/secrets.conf",
      "600 root:root /etc/redis-stack/admin.pass",
      "640 root:redis /etc/redis-stack/tls/node.key",
    ]);
    expect((await h.sh("grep -c '^user app on #' /etc/redis-stack/users.acl")).stdout.trim()).toBe("1");
    // The file Redis reads (the redis group may) holds the replication password, never the admin's.
    const secrets = (await h.sh("cat /etc/redis-stack/secrets.conf /etc/redis-stack/redis-node.conf")).stdout;
    expect(secrets).toContain(c.passwords.replication);
    expect(secrets).not.toContain(c.passwords.admin);
    expect(secrets).toMatch(/^masteruser replication$/m);
    // Nothing secret in the node's logs, its journal, cloud-init's output or the console.
    const logs = (
      await h.sh("cat /var/log/redis-stack.log /var/log/cloud-init-output.log; journalctl --no-pager -o cat")
    ).stdout;
    expect(logs).toContain("first boot of shard0-0 done");
    expect(logs).not.toContain(c.passwords.app);
    expect(logs).not.toContain(c.passwords.admin);
    expect(logs).not.toContain(c.passwords.replication);
  });

  test("cluster_state ok, 16384 slots, 3 masters with the planned ranges, each with exactly its planned replica in another AZ", async () => {
    const info = (await c.cli("shard0-0", ["cluster", "info"])).stdout;
    expect(infoField(info, "cluster_state")).toBe("ok");
    expect(infoField(info, "cluster_slots_assigned")).toBe("16384");
    expect(infoField(info, "cluster_slots_ok")).toBe("16384");
    expect(infoField(info, "cluster_known_nodes")).toBe("6");
    await expectPlannedTopology(c, "shard0-0");
  });

  test("redis-cli --cluster check passes", async () => {
    const r = await c.cli("shard1-0", ["--cluster", "check", `${c.nodes[1].ip}:${c.nodes[1].port}`]);
    expect(r.stdout).toContain("[OK] All nodes agree about slots configuration.");
    expect(r.stdout).toContain("[OK] All 16384 slots covered.");
    expect(r.stdout).not.toMatch(/\[ERR\]|\[WARNING\]/);
    expect(r.code).toBe(0);
  });

  test("AOF and RDB are on, and their files are on the mounted data volume", async () => {
    for (const [i, h] of c.hosts.entries()) {
      expect((await c.cli(c.nodes[i], ["config", "get", "appendonly"])).stdout).toBe("appendonly\nyes\n");
      expect((await c.cli(c.nodes[i], ["config", "get", "save"])).stdout).toBe("save\n900 1 300 10 60 10000\n");
      expect((await c.cli(c.nodes[i], ["config", "get", "appendfsync"])).stdout).toBe("appendfsync\neverysec\n");
      expect((await c.cli(c.nodes[i], ["bgsave"])).code).toBe(0);
      const mount = await h.sh("findmnt -n -o SOURCE,FSTYPE /var/lib/redis");
      expect(mount.stdout.trim()).toBe(`${h.volumeDevice} ext4`);
      let files = "";
      for (let t = 0; t < 50 && !/dump\.rdb/.test(files); t++) {
        files = (await h.sh("ls /var/lib/redis /var/lib/redis/appendonlydir")).stdout;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(files).toMatch(/dump\.rdb/);
      expect(files).toMatch(/nodes\.conf/);
      expect(files).toMatch(/appendonly\.aof\.\d+\.base\.rdb/);
      expect(files).toMatch(/appendonly\.aof\.\d+\.incr\.aof/);
    }
  });

  test("maxmemory and maxmemory-policy are what the stack config says", async () => {
    for (const n of c.nodes) {
      expect((await c.cli(n, ["config", "get", "maxmemory"])).stdout).toBe(
        `maxmemory\n${settings.ec2?.maxmemoryBytes}\n`,
      );
      expect((await c.cli(n, ["config", "get", "maxmemory-policy"])).stdout).toBe(
        `maxmemory-policy\n${settings.maxmemoryPolicy}\n`,
      );
    }
  });

  test("an unauthenticated client is refused; the app user works but cannot run admin commands", async () => {
    const anon = await c.cli("shard0-0", ["ping"], "none");
    expect(anon.stdout + anon.stderr).toMatch(/NOAUTH|Authentication required/);
    const wrong = await c.lab.client.exec(
      ["redis-cli", "-h", c.nodes[0].ip, "--tls", "--cacert", c.clientCa ?? "", "--user", "app", "ping"],
      { env: { REDISCLI_AUTH: "wrong-password" } },
    );
    expect(wrong.stdout + wrong.stderr).toMatch(/WRONGPASS|invalid username-password/);
    expect((await c.cli("shard0-0", ["ping"], "app")).stdout).toBe("PONG\n");
    expect((await c.cli("shard0-0", ["config", "get", "maxmemory"], "app")).stdout).toMatch(/NOPERM/);
  });

  test("replicas log in as the replication user, which can do nothing else; a master from before that user existed gets it from its replica", async () => {
    const asReplication = async (node: string, cmd: string[]) => {
      const r = await c.lab.client.exec(
        [
          "redis-cli",
          "-h",
          c.nodes.find((n) => n.node.name === node)?.ip ?? "",
          "--tls",
          "--cacert",
          c.clientCa ?? "",
        ].concat(["--user", "replication", ...cmd]),
        { env: { REDISCLI_AUTH: c.passwords.replication } },
      );
      return (r.stdout + r.stderr).trim();
    };
    expect(await asReplication("shard0-0", ["ping"])).toBe("PONG");
    for (const cmd of [
      ["get", "k"],
      ["set", "k", "v"],
      ["info"],
      ["config", "get", "masterauth"],
      ["acl", "list"],
      ["cluster", "nodes"],
    ])
      expect([cmd.join(" "), await asReplication("shard0-0", cmd)]).toEqual([
        cmd.join(" "),
        expect.stringMatching(/NOPERM/),
      ]);
    // A master launched before the user existed: take the user away (which also ends the connections logged in
    // as it: the replica's link), and the replica (its settings tick) creates the user there again and syncs.
    const master = await masterOfSlot(c, c.nodes[1].node.slots.start);
    const replica = c.nodes.find((n) => n.node.shard === master.node.shard && n !== master);
    if (!replica) throw new Error(`no replica of ${master.node.name}`);
    const r = c.hosts[replica.node.index];
    const logLines = async () =>
      Number((await r.sh("grep -c 'replication: created user' /var/log/redis-stack.log || true")).stdout.trim());
    const before = await logLines();
    expect((await c.cli(master, ["acl", "deluser", "replication"])).stdout.trim()).toBe("1");
    const link = async () => infoField((await c.cli(replica, ["info", "replication"])).stdout, "master_link_status");
    const t0 = Date.now();
    let healed = false;
    while (Date.now() - t0 < 60_000 && !healed) {
      await new Promise((res) => setTimeout(res, 1000));
      healed = (await link()) === "up" && (await c.cli(master, ["acl", "getuser", "replication"])).stdout.trim() !== "";
    }
    expect(healed).toBe(true);
    expect(await logLines()).toBe(before + 1);
    // The same user as the replica's own (from its ACL file): password hash and rules, in whatever order Redis lists them.
    const userLine = async (n: typeof master) =>
      ((await c.cli(n, ["acl", "list"])).stdout.split("\n").find((l) => l.startsWith("user replication ")) ?? "")
        .split(" ")
        .sort();
    expect(await userLine(master)).toEqual(await userLine(replica));
    expect((await userLine(master)).join(" ")).toMatch(
      /^#[0-9a-f]{64} \+ping \+psync \+replconf -@all on replication resetchannels user$/,
    );
    console.log(
      `replication user healed on ${master.node.name} by ${replica.node.name} within ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
  });

  test("the app user on a real node: data commands run; what wipes, ships out or administers data is refused", async () => {
    const asApp = async (args: string[]) => (await c.cli("shard0-0", ["-c", ...args], "app")).stdout.trim();
    expect(await asApp(["set", "acl:{a}", "v"])).toBe("OK");
    expect(await asApp(["get", "acl:{a}"])).toBe("v");
    expect(await asApp(["hset", "acl:{a}:h", "f", "1"])).toBe("1");
    expect(await asApp(["eval", "return redis.call('get', KEYS[1])", "1", "acl:{a}"])).toBe("v");
    expect(await asApp(["cluster", "slots"])).not.toMatch(/NOPERM/);
    expect(await asApp(["info", "server"])).toMatch(/redis_version:7\.0/);
    for (const cmd of [
      ["flushall"],
      ["flushdb"],
      ["keys", "*"],
      // (DEBUG: enable-debug-command refuses it even before the ACL; ACL DRYRUN in the unit tests.)
      ["config", "set", "maxmemory", "1"],
      ["replicaof", "no", "one"],
      ["cluster", "forget", "0123456789012345678901234567890123456789"],
      ["cluster", "failover"],
      ["client", "kill", "id", "1"],
      ["client", "list"],
      ["script", "flush"],
      ["function", "flush"],
      ["acl", "list"],
      ["bgsave"],
      ["restore", "acl:{b}", "0", "x"],
    ]) {
      expect([cmd.join(" "), await asApp(cmd)]).toEqual([cmd.join(" "), expect.stringMatching(/NOPERM/)]);
    }
    expect(await asApp(["get", "acl:{a}"])).toBe("v");
    // What the node runs is what the stack renders: the ACL file's app line, its rules byte for byte.
    const line = (await c.hosts[0].sh(`grep '^user app ' ${nodeFiles(EC2_PATHS).acl}`)).stdout.trim();
    expect(line.split(" ").slice(4).join(" ")).toBe(APP_ACL_RULES);
    // A granted RESTORE (or MIGRATE's) payload is checked before Redis loads it.
    expect((await c.cli("shard0-0", ["config", "get", "sanitize-dump-payload"])).stdout).toBe(
      "sanitize-dump-payload\nclients\n",
    );
  });

  test("an app's mixed workload as the app user through ioredis Cluster, node-redis createCluster and redis-stack-client: every command works, FLUSHALL is refused", async () => {
    for (const client of ["ioredis", "node-redis", "redis-stack-client"]) {
      const r = await c.lab.client.exec(
        ["node", "-r", require.resolve("ts-node/register/transpile-only"), MIXED_WORKLOAD],
        {
          env: { ...labContractEnv(c), ...TS_NODE_ENV, MIXED_CLIENT: client },
          timeoutMs: 120_000,
        },
      );
      expect([client, r.code, r.stderr.slice(-500)]).toEqual([client, 0, expect.anything()]);
      const out = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as {
        client: string;
        ran: number;
        failed: Array<{ op: string; error: string }>;
        refused: string;
      };
      expect(out).toMatchObject({ client, failed: [] });
      expect(out.ran).toBeGreaterThan(50);
      expect([client, out.refused]).toEqual([client, expect.stringMatching(/NOPERM/)]);
    }
  });

  test("TLS only: a plaintext client reaches the port and is dropped at the handshake; a TLS client with the stack's CA works", async () => {
    // The port takes the connection (not refused, not unreachable) ...
    const tcp = await c.lab.client.sh(`exec 3<>/dev/tcp/${c.nodes[0].ip}/6379 && echo open`, { timeoutMs: 5000 });
    expect(tcp.stdout.trim()).toBe("open");
    // ... and the server hangs up on a client that speaks RESP instead of TLS.
    const plain = await c.lab.client.exec(["redis-cli", "-h", c.nodes[0].ip, "--user", "app", "ping"], {
      env: { REDISCLI_AUTH: c.passwords.app },
      timeoutMs: 5000,
    });
    const said = plain.stdout + plain.stderr;
    expect(said).not.toContain("PONG");
    expect(said).toMatch(/Server closed the connection|Connection reset by peer/);
    const log = await c.hosts[0].sh(`grep -c 'wrong version number' ${EC2_PATHS.logDir}/redis-node.log || true`);
    expect(Number(log.stdout.trim())).toBeGreaterThan(0);
    expect((await c.cli("shard0-0", ["ping"], "app")).stdout).toBe("PONG\n");
  });

  test("keys written through any node are readable through any other with a cluster client", async () => {
    for (let i = 0; i < 30; i++) {
      const writer = c.nodes[i % 6];
      expect((await c.cli(writer, ["-c", "set", `key:${i}`, `value-${i}`], "app")).stdout).toBe("OK\n");
    }
    for (let i = 0; i < 30; i++) {
      const reader = c.nodes[(i + 3) % 6];
      expect((await c.cli(reader, ["-c", "get", `key:${i}`], "app")).stdout).toBe(`value-${i}\n`);
    }
  });

  // Boot order: the backup suite's restored stack boots its nodes in reverse, the first planned node last.
  // Last: its final scenario kills a master.
  metricsScenarios(() => c, METRICS_PERIOD);
});
