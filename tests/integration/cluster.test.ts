/**
 * Issue: the cluster forms for real. Six namespaced hosts each run the exact user-data the EC2 component
 * renders for the prod stack (TLS on, as Pulumi.prod.yaml says); only systemctl, apt-get and aws are
 * stand-ins. Everything else (mkfs, mount, redis-server, redis-cli --cluster) is real.
 */
import { describeLab } from "../../lab/hostlab/hostLab";
import { stackSettings } from "../../local/localCluster";
import { AZS, ClusterLab, createClusterLab, infoField, parseClusterNodes } from "../../lab/clusterLab";

const settings = stackSettings("prod");

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
      expect(c.hosts[n.node.index].az).not.toBe(c.hosts[planned.node.index].az);
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

describeLab("prod cluster from rendered user-data", () => {
  let c: ClusterLab;
  let bootCodes: number[] = [];
  let bootLogs: string[] = [];

  beforeAll(async () => {
    c = await createClusterLab(settings);
    const results = await c.boot();
    bootCodes = results.map((r) => r.code);
    bootLogs = results.map((r) => r.stdout);
    results.forEach((r, i) => {
      if (r.code !== 0)
        console.log(`user-data of ${c.nodes[i].node.name} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    });
    await c.waitConverged();
  }, 300000);
  afterAll(async () => c?.destroy());

  test("every node's user-data exits 0", () => {
    expect(bootCodes).toEqual([0, 0, 0, 0, 0, 0]);
  });

  test("the Session Manager agent is fetched from the region's bucket, and its absence (no route to S3 here) never stops Redis", async () => {
    const region = settings.ec2?.region;
    expect(region).toBe("us-east-1");
    const arch = (await c.hosts[0].sh("dpkg --print-architecture")).stdout.trim();
    const url = `https://s3.${region}.amazonaws.com/amazon-ssm-${region}/latest/debian_${arch}/amazon-ssm-agent.deb`;
    for (const out of bootLogs) {
      expect(out).toContain(`warning: could not install amazon-ssm-agent from ${url}`);
      // Attempted only once the node has its place in the cluster.
      const settled = out.search(/part of the cluster|joined: replica|slot plan verified/);
      expect(settled).toBeGreaterThan(0);
      expect(out.indexOf("amazon-ssm-agent")).toBeGreaterThan(settled);
      expect(out).toMatch(/bootstrap of \S+ done/);
    }
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

  test("secrets on the node are readable by root and redis only, and stay out of the boot log", async () => {
    const h = c.hosts[0];
    const modes = (
      await h.sh(
        "stat -c '%a %U:%G %n' /etc/redis/users.acl /etc/redis/secrets.conf /etc/redis/admin.pass /etc/redis/tls/node.key",
      )
    ).stdout
      .trim()
      .split("\n");
    expect(modes).toEqual([
      "640 root:redis /etc/redis/users.acl",
      "640 root:redis /etc/redis/secrets.conf",
      "600 root:root /etc/redis/admin.pass",
      "640 root:redis /etc/redis/tls/node.key",
    ]);
    expect((await h.sh("grep -c '^user app on #' /etc/redis/users.acl")).stdout.trim()).toBe("1");
    const log = (await h.sh("cat /var/log/redis-bootstrap.log")).stdout;
    expect(log).toContain("bootstrap of shard0-0 done");
    expect(log).not.toContain(c.passwords.app);
    expect(log).not.toContain(c.passwords.admin);
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
      expect(mount.stdout.trim()).toBe(`${h.dataDevice} ext4`);
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

  test("TLS only: a plaintext client gets no answer; a TLS client with the stack's CA works", async () => {
    const plain = await c.lab.client.exec(["redis-cli", "-h", c.nodes[0].ip, "--user", "app", "ping"], {
      env: { REDISCLI_AUTH: c.passwords.app },
      timeoutMs: 5000,
    });
    expect(plain.stdout).not.toContain("PONG");
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

  test("running the user-data again on every host (a reboot) changes nothing and keeps the data", async () => {
    const before = parseClusterNodes((await c.cli("shard0-0", ["cluster", "nodes"])).stdout)
      .map(
        (l) =>
          `${l.id} ${l.addr} ${l.flags.filter((f) => f !== "myself").join(",")} ${l.masterId} ${l.slots.join(" ")}`,
      )
      .sort();
    const pids = await Promise.all(c.hosts.map(async (h) => (await h.sh("pgrep -x redis-server")).stdout.trim()));
    // Once the agent is installed (a stand-in package here), later boots leave it alone.
    const pkg = await c.hosts[0].sh(
      'd=$(mktemp -d) && mkdir "$d/DEBIAN" && printf \'Package: amazon-ssm-agent\\nVersion: 0.0-lab\\nArchitecture: all\\nMaintainer: lab <lab@example.invalid>\\nDescription: stand-in\\n\' >"$d/DEBIAN/control" && dpkg-deb -b "$d" "$d.deb" >/dev/null && dpkg -i "$d.deb" >/dev/null',
    );
    expect(pkg.code).toBe(0);
    const again = await c.boot();
    expect(again[0].stdout).not.toContain("amazon-ssm-agent");
    expect(again[1].stdout).toContain("could not install amazon-ssm-agent");
    for (const r of again) {
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("already a cluster member");
      expect(r.stdout).toContain("redis already running with this configuration");
      expect(r.stdout).not.toContain("formatting");
    }
    const after = parseClusterNodes((await c.cli("shard0-0", ["cluster", "nodes"])).stdout)
      .map(
        (l) =>
          `${l.id} ${l.addr} ${l.flags.filter((f) => f !== "myself").join(",")} ${l.masterId} ${l.slots.join(" ")}`,
      )
      .sort();
    expect(after).toEqual(before);
    const pidsAfter = await Promise.all(c.hosts.map(async (h) => (await h.sh("pgrep -x redis-server")).stdout.trim()));
    expect(pidsAfter).toEqual(pids);
    for (let i = 0; i < 30; i++)
      expect((await c.cli(c.nodes[i % 6], ["-c", "get", `key:${i}`], "app")).stdout).toBe(`value-${i}\n`);
  });
});

describeLab("boot order does not matter", () => {
  const plain = { ...settings, tls: false };

  test("node 0 (the creator) booting last, 1.5 s after the others, still forms the planned cluster (TLS off)", async () => {
    const c = await createClusterLab(plain);
    try {
      const results = await c.boot([5, 3, 1, 4, 2, 0], 300);
      expect(results.map((r) => r.code)).toEqual([0, 0, 0, 0, 0, 0]);
      // A node's user-data ends once its own master lists it; the other nodes hear of it by gossip.
      await c.waitConverged();
      expect(infoField((await c.cli("shard0-1", ["cluster", "info"])).stdout, "cluster_state")).toBe("ok");
      await expectPlannedTopology(c, "shard0-1");
      expect((await c.cli("shard2-0", ["--cluster", "check", `${c.nodes[2].ip}:6379`])).code).toBe(0);
    } finally {
      await c.destroy();
    }
  }, 300000);
});
