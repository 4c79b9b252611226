/**
 * The Sentinel topology's pure parts (components/ec2/sentinel.ts), and its rendered sentinel.conf loaded by
 * this machine's real redis-server 7.0 in sentinel mode, monitoring a real Redis as the ACL user the
 * stack defines for it.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ChildProcess, spawn, spawnSync } from "child_process";
import { SCRIPTS_DIR } from "../../components/ec2/node/userData";
import { describeRedis, redisCli } from "./support/redisCli";
import { makePki } from "../../lab/pki";
import {
  MIN_SENTINELS,
  planSentinelTopology,
  renderSentinelConf,
  SENTINEL_ACL_RULES,
  SENTINEL_PEER_ACL_RULES,
  SENTINEL_PORT,
  SENTINEL_USER,
  sentinelQuorum,
  sentinelTimings,
} from "../../components/ec2/sentinel";

test("quorum is a majority of at least three Sentinels", () => {
  expect([3, 4, 5, 6, 7].map(sentinelQuorum)).toEqual([2, 3, 3, 4, 4]);
  expect(() => sentinelQuorum(2)).toThrow(/at least 3 Sentinels, got 2/);
  expect(MIN_SENTINELS).toBe(3);
});

test("timings derive from the node timeout: detection equal to it, writes refused a few seconds after it", () => {
  expect(sentinelTimings(1000)).toEqual({ downAfterMs: 1000, failoverTimeoutMs: 3_000, minReplicasMaxLagSeconds: 2 });
  expect(sentinelTimings(2000)).toEqual({ downAfterMs: 2000, failoverTimeoutMs: 4_000, minReplicasMaxLagSeconds: 3 });
  expect(sentinelTimings(5000)).toEqual({ downAfterMs: 5000, failoverTimeoutMs: 10_000, minReplicasMaxLagSeconds: 6 });
});

test("one primary and its replicas, each in its own availability zone", () => {
  const plan = planSentinelTopology(2, 3);
  expect(plan.map((n) => [n.name, n.role, n.azIndex])).toEqual([
    ["shard0-0", "master", 0],
    ["shard0-1", "replica", 1],
    ["shard0-2", "replica", 2],
  ]);
  expect(() => planSentinelTopology(1, 3)).toThrow(/at least 2 replicas, got 1/);
  expect(() => planSentinelTopology(3, 3)).toThrow(/4 Sentinel nodes need 4 availability zones, got 3/);
});

test("a bad master name is refused before it reaches a config file", () => {
  const base = {
    announceIp: "10.0.1.10",
    primaryIp: "10.0.1.10",
    redisPort: 6379,
    sentinels: 3,
    nodeTimeoutMs: 2000,
    tls: false as const,
    dir: "/var/lib/redis-sentinel",
  };
  expect(() => renderSentinelConf({ ...base, masterName: "a b" })).toThrow(/not a Sentinel master name/);
  expect(renderSentinelConf({ ...base, masterName: "redis-prod" })).toContain(
    "sentinel monitor redis-prod 10.0.1.10 6379 2\n",
  );
});

describeRedis.each([false, true])(
  "real redis-server in sentinel mode loads the rendered sentinel.conf (TLS %s)",
  (tls) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sentinel-"));
    const pki = tls
      ? makePki(path.join(dir, "pki"), [
          { name: "data", ip: "127.0.0.5" },
          { name: "sentinel", ip: "127.0.0.5" },
        ])
      : undefined;
    /** Each process's certificate and key on disk, and the CA. */
    const tlsFiles = (name: string) => {
      const node = pki?.nodes.get(name);
      if (!pki || !node) throw new Error(`no certificate for ${name}`);
      const [cert, key] = [path.join(dir, `${name}.crt`), path.join(dir, `${name}.key`)];
      fs.writeFileSync(cert, node.certPem);
      fs.writeFileSync(key, node.keyPem, { mode: 0o600 });
      return { caCert: pki.caCertFile, cert, key };
    };
    const password = "s3ntinel-test-pass";
    const procs: ChildProcess[] = [];
    // The data node and Sentinel on 127.0.0.5, as on a node: its own loopback address, so the fixed port is free
    // (the client suite runs its three Sentinels on 127.0.0.2-4, maybe at the same time).
    const redisPort = 20000 + (process.pid % 5000);
    const as = (user: string, host: string, port: number, ...args: string[]) =>
      redisCli(host, port, { user, password, caFile: pki?.caCertFile }, ...args);
    const cli = (host: string, port: number, ...args: string[]) => as(SENTINEL_USER, host, port, ...args);

    beforeAll(async () => {
      const dataTls = tls ? tlsFiles("data") : undefined;
      fs.writeFileSync(
        path.join(dir, "redis.conf"),
        [
          ...(dataTls
            ? [
                "port 0",
                `tls-port ${redisPort}`,
                `tls-cert-file ${dataTls.cert}`,
                `tls-key-file ${dataTls.key}`,
                `tls-ca-cert-file ${dataTls.caCert}`,
                "tls-auth-clients optional",
              ]
            : [`port ${redisPort}`]),
          "bind 127.0.0.5",
          `dir ${dir}`,
          "user default off",
          `user ${SENTINEL_USER} on >${password} ${SENTINEL_ACL_RULES}`,
          `user admin on >${password} ~* &* +@all`,
        ].join("\n") + "\n",
      );
      const conf = renderSentinelConf({
        masterName: "redis-test",
        announceIp: "127.0.0.5",
        primaryIp: "127.0.0.5",
        redisPort,
        sentinels: 3,
        nodeTimeoutMs: 2000,
        tls: tls ? tlsFiles("sentinel") : false,
        dir,
      });
      // The secret lines the node appends at boot.
      fs.writeFileSync(
        path.join(dir, "sentinel.conf"),
        conf +
          [
            `sentinel auth-pass redis-test ${password}`,
            `sentinel sentinel-pass ${password}`,
            "user default off",
            `user ${SENTINEL_USER} on >${password} ${SENTINEL_PEER_ACL_RULES}`,
            `user admin on >${password} ~* &* +@all`,
          ].join("\n") +
          "\n",
      );
      procs.push(spawn("redis-server", [path.join(dir, "redis.conf")], { stdio: "ignore" }));
      procs.push(
        spawn("redis-server", [path.join(dir, "sentinel.conf"), "--sentinel"], {
          stdio: ["ignore", fs.openSync(path.join(dir, "sentinel.log"), "w"), "ignore"],
        }),
      );
      for (let t = 0; t < 100; t++) {
        const r = cli("127.0.0.5", SENTINEL_PORT, "sentinel", "master", "redis-test");
        if (r.status === 0 && /\nflags\nmaster\n/.test(r.stdout) && /\ninfo-refresh\n\d+\n/.test(r.stdout)) break;
        await new Promise((res) => setTimeout(res, 100));
      }
    }, 30_000);

    afterAll(() => {
      for (const p of procs) p.kill("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    });

    test("Sentinel monitors the primary with the derived quorum and timings, and asks nothing its ACL user may not run", () => {
      const r = cli("127.0.0.5", SENTINEL_PORT, "sentinel", "master", "redis-test");
      expect(r.status).toBe(0);
      const lines = r.stdout.trim().split("\n");
      const field = (k: string) => lines[lines.indexOf(k) + 1];
      expect(field("ip")).toBe("127.0.0.5");
      expect(field("port")).toBe(String(redisPort));
      expect(field("flags")).toBe("master");
      expect(field("quorum")).toBe("2");
      expect(field("down-after-milliseconds")).toBe("2000");
      expect(field("failover-timeout")).toBe("4000");
      // Sentinel's INFO, PING, ROLE and hello PUBLISH/SUBSCRIBE on the data node all went through as its
      // ACL user: the node's ACL log (read as admin) has no refusal, and the node saw Sentinel's hellos.
      expect(as("admin", "127.0.0.5", redisPort, "acl", "log").stdout.trim()).toBe("");
      const clients = as("admin", "127.0.0.5", redisPort, "client", "list").stdout;
      expect(clients).toMatch(new RegExp(`cmd=(info|ping|subscribe|publish) user=${SENTINEL_USER} `));
      // An unauthenticated client gets nothing from Sentinel.
      const anon = redisCli("127.0.0.5", SENTINEL_PORT, { caFile: pki?.caCertFile }, "sentinel", "masters");
      expect(anon.stdout).toMatch(/NOAUTH|WRONGPASS|NOPERM/);
    });

    test("the node's metrics collector reads its Sentinel: ClusterStateOk needs a quorum, MastersSeen a healthy primary", () => {
      fs.writeFileSync(path.join(dir, "admin.pass"), password, { mode: 0o600 });
      fs.writeFileSync(
        path.join(dir, "node.env"),
        [
          "NODE_NAME='shard0-0'",
          "NODE_SHARD='0'",
          "NODE_IP='127.0.0.5'",
          `REDIS_PORT='${redisPort}'`,
          "ADMIN_USER='admin'",
          `ADMIN_PASS_FILE='${dir}/admin.pass'`,
          `TLS='${tls ? "yes" : "no"}'`,
          `TLS_CA='${pki?.caCertFile ?? ""}'`,
          `DATA_DIR='${dir}'`,
          "METRICS_NAMESPACE='RedisStack'",
          "METRICS_STACK='redis-stack-test'",
          "METRICS_INTERVAL_SECONDS='10'",
          "TOPOLOGY='sentinel'",
          `SENTINEL_PORT='${SENTINEL_PORT}'`,
          "SENTINEL_MASTER='redis-test'",
        ].join("\n"),
      );
      const collect = (): Record<string, number> => {
        const r = spawnSync(
          "python3",
          [
            "-B",
            path.join(SCRIPTS_DIR, "metrics.py"),
            "--dry-run",
            "--env",
            path.join(dir, "node.env"),
            "--state",
            path.join(dir, "metrics-state.json"),
            "--log",
            path.join(dir, "metrics.log"),
          ],
          { encoding: "utf8" },
        );
        if (r.status !== 0) throw new Error(r.stderr);
        const data = JSON.parse(r.stdout) as Array<{ MetricName: string; Dimensions: unknown[]; Value: number }>;
        return Object.fromEntries(data.filter((d) => d.Dimensions.length === 3).map((d) => [d.MetricName, d.Value]));
      };
      // One Sentinel of a quorum of 2: it sees the primary, but could not fail it over.
      const alone = collect();
      expect({ up: alone.Up, primary: alone.IsMaster, seen: alone.MastersSeen, ok: alone.ClusterStateOk }).toEqual({
        up: 1,
        primary: 1,
        seen: 1,
        ok: 0,
      });
      // No cluster metric from a node that runs no cluster.
      expect(alone.ClusterSlotsOk).toBeUndefined();
      expect(as("admin", "127.0.0.5", SENTINEL_PORT, "sentinel", "set", "redis-test", "quorum", "1").stdout).toMatch(
        /OK/,
      );
      expect(collect().ClusterStateOk).toBe(1);
      expect(as("admin", "127.0.0.5", SENTINEL_PORT, "sentinel", "set", "redis-test", "quorum", "2").stdout).toMatch(
        /OK/,
      );
    });
  },
);
