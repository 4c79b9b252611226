/**
 * The client on a real Sentinel topology on this machine: three redis-server 7.0 data nodes (a primary and
 * two replicas) and three Sentinels, one of each per loopback address as on the stack's nodes, every one
 * with the stack's ACL users and the stack's rendered sentinel.conf. The primary is killed (SIGKILL); the
 * Sentinels fail over and the client follows them. Judged from outside: redis-cli on the survivors.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ChildProcess, spawn } from "child_process";
import { describeRedis, redisCli } from "../support/redisCli";
import { createClient, StackClient } from "../../../client/src";
import { readContract } from "../../../client/src/contract";
import {
  renderSentinelConf,
  SENTINEL_ACL_RULES,
  SENTINEL_APP_ACL_RULES,
  SENTINEL_PEER_ACL_RULES,
  SENTINEL_PORT,
  SENTINEL_USER,
} from "../../../components/ec2/sentinel";
import { ADMIN_ACL_RULES, ADMIN_USER, APP_ACL_RULES, APP_USER } from "../../../components/ec2/node/redisConf";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const MASTER = "redis-test";
const PASSWORD = "app-and-admin-test-pass";
const IPS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];

describeRedis("the client on a real Sentinel topology", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sentinel-client-"));
  const port = 21000 + (process.pid % 5000);
  const data: ChildProcess[] = [];
  const sentinels: ChildProcess[] = [];
  let client: StackClient;

  const cli = (ip: string, p: number, user: string, ...args: string[]) =>
    redisCli(ip, p, { user, password: PASSWORD }, ...args);
  const primaryPerSentinel = (i: number) =>
    cli(IPS[i], SENTINEL_PORT, ADMIN_USER, "sentinel", "get-master-addr-by-name", MASTER).stdout.trim();

  beforeAll(async () => {
    for (const [i, ip] of IPS.entries()) {
      const nodeDir = path.join(dir, `node${i}`);
      fs.mkdirSync(nodeDir);
      const users = [
        "user default off",
        `user ${APP_USER} on >${PASSWORD} ${APP_ACL_RULES}`,
        `user ${ADMIN_USER} on >${PASSWORD} ${ADMIN_ACL_RULES}`,
      ];
      fs.writeFileSync(
        path.join(nodeDir, "redis.conf"),
        [
          `port ${port}`,
          `bind ${ip}`,
          // What the primary's INFO (and so Sentinel) lists for this replica: its own address, not the
          // loopback source address its connection comes from.
          `replica-announce-ip ${ip}`,
          `dir ${nodeDir}`,
          "appendonly yes",
          `masteruser ${ADMIN_USER}`,
          `masterauth ${PASSWORD}`,
          ...(i > 0 ? [`replicaof ${IPS[0]} ${port}`] : []),
          ...users,
          `user ${SENTINEL_USER} on >${PASSWORD} ${SENTINEL_ACL_RULES}`,
        ].join("\n") + "\n",
      );
      fs.writeFileSync(
        path.join(nodeDir, "sentinel.conf"),
        renderSentinelConf({
          masterName: MASTER,
          announceIp: ip,
          primaryIp: IPS[0],
          redisPort: port,
          sentinels: 3,
          nodeTimeoutMs: 2000,
          tls: false,
          dir: nodeDir,
        }) +
          [
            `sentinel auth-pass ${MASTER} ${PASSWORD}`,
            `sentinel sentinel-pass ${PASSWORD}`,
            "user default off",
            `user ${SENTINEL_USER} on >${PASSWORD} ${SENTINEL_PEER_ACL_RULES}`,
            `user ${APP_USER} on >${PASSWORD} ${SENTINEL_APP_ACL_RULES}`,
            `user ${ADMIN_USER} on >${PASSWORD} +@all`,
          ].join("\n") +
          "\n",
      );
      data.push(spawn("redis-server", [path.join(nodeDir, "redis.conf")], { stdio: "ignore" }));
      sentinels.push(
        spawn("redis-server", [path.join(nodeDir, "sentinel.conf"), "--sentinel"], {
          stdio: ["ignore", fs.openSync(path.join(nodeDir, "sentinel.log"), "w"), "ignore"],
        }),
      );
    }
    // Ready: every Sentinel knows the other two, and both replicas with their link to the primary up (a
    // Sentinel whose last INFO of a replica shows it still syncing will not promote it).
    for (let t = 0; t < 300; t++) {
      const ready = IPS.map((ip) => {
        const master = cli(ip, SENTINEL_PORT, ADMIN_USER, "sentinel", "master", MASTER).stdout;
        const replicas = cli(ip, SENTINEL_PORT, ADMIN_USER, "sentinel", "replicas", MASTER).stdout;
        return (
          /num-other-sentinels\n2\n/.test(master) && (replicas.match(/master-link-status\nok\n/g) ?? []).length === 2
        );
      });
      if (ready.every(Boolean)) break;
      await sleep(100);
    }
    client = await createClient(
      {
        REDIS_URL: `redis://${APP_USER}:${PASSWORD}@${IPS[0]}:${SENTINEL_PORT}`,
        REDIS_CLUSTER_MODE: "false",
        REDIS_TLS: "false",
        REDIS_SENTINELS: IPS.map((ip) => `${ip}:${SENTINEL_PORT}`).join(","),
        REDIS_SENTINEL_MASTER: MASTER,
        REDIS_MAX_RETRIES: "10",
        REDIS_CONNECT_TIMEOUT: "2000",
      },
      { retryBudgetMs: 15_000 },
    );
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    for (const p of [...data, ...sentinels]) p.kill("SIGKILL");
    if (!process.env.KEEP_SENTINEL_LAB) fs.rmSync(dir, { recursive: true, force: true });
  });

  test("the contract reads the Sentinel pair, and refuses half of it or cluster mode beside it", () => {
    const base = { REDIS_URL: `redis://a:b@${IPS[0]}:${SENTINEL_PORT}`, REDIS_SENTINEL_MASTER: MASTER };
    expect(readContract({ ...base, REDIS_SENTINELS: `${IPS[0]}:26379,${IPS[1]}:26379` }).sentinel).toEqual({
      masterName: MASTER,
      sentinels: [
        { host: IPS[0], port: 26379 },
        { host: IPS[1], port: 26379 },
      ],
    });
    expect(() => readContract(base)).toThrow(/REDIS_SENTINELS is not set, but REDIS_SENTINEL_MASTER is/);
    expect(() => readContract({ ...base, REDIS_SENTINELS: `${IPS[0]}:26379`, REDIS_CLUSTER_MODE: "true" })).toThrow(
      /REDIS_CLUSTER_MODE is true, but a Sentinel topology/,
    );
  });

  test("writes go to the primary the Sentinels name, as the app user, with nothing refused by any ACL", async () => {
    await client.set("k", "v1");
    expect(await client.get("k")).toBe("v1");
    // On the primary, and replicated.
    expect(cli(IPS[0], port, ADMIN_USER, "get", "k").stdout.trim()).toBe("v1");
    for (let t = 0; t < 50 && cli(IPS[1], port, ADMIN_USER, "get", "k").stdout.trim() !== "v1"; t++) await sleep(100);
    expect(cli(IPS[1], port, ADMIN_USER, "get", "k").stdout.trim()).toBe("v1");
    for (const ip of IPS) {
      expect(cli(ip, port, ADMIN_USER, "acl", "log").stdout.trim()).toBe("");
      expect(cli(ip, SENTINEL_PORT, ADMIN_USER, "acl", "log").stdout.trim()).toBe("");
    }
  });

  test("the app user may ask the Sentinels what each client library asks, and may not reconfigure them", () => {
    const asApp = (...args: string[]) => cli(IPS[1], SENTINEL_PORT, APP_USER, ...args);
    // ioredis: GET-MASTER-ADDR-BY-NAME; node-redis: MASTER, REPLICAS, SENTINELS; redis-py: MASTERS.
    expect(asApp("sentinel", "get-master-addr-by-name", MASTER).stdout).toContain(IPS[0]);
    expect(asApp("sentinel", "masters").stdout).toContain(MASTER);
    expect(asApp("sentinel", "replicas", MASTER).stdout).toContain("slave");
    for (const refused of [
      ["sentinel", "failover", MASTER],
      ["sentinel", "set", MASTER, "quorum", "1"],
      ["sentinel", "remove", MASTER],
    ]) {
      const r = asApp(...refused);
      expect(r.stdout + r.stderr).toMatch(/NOPERM/);
    }
  });

  test("kill -9 of the primary: the Sentinels promote a replica and the client's writes resume on it, none lost", async () => {
    const acked: number[] = [];
    let stop = false;
    let slowestMs = 0;
    const writer = (async () => {
      for (let seq = 1; !stop; seq++) {
        const t0 = Date.now();
        await client.set(`seq:${seq}`, String(seq));
        slowestMs = Math.max(slowestMs, Date.now() - t0);
        acked.push(seq);
        await sleep(20);
      }
    })();
    await sleep(500);
    const killedAt = Date.now();
    data[0].kill("SIGKILL");
    // Every Sentinel names a new primary: one of the replicas.
    let named: string[] = [];
    for (let t = 0; t < 300; t++) {
      named = IPS.map((_, i) => primaryPerSentinel(i));
      if (named.every((a) => a !== "" && !a.startsWith(IPS[0]) && a === named[0])) break;
      await sleep(50);
    }
    const promotedAfterMs = Date.now() - killedAt;
    const promoted = named[0].split("\n")[0];
    expect([IPS[1], IPS[2]]).toContain(promoted);
    const ackedAtPromotion = acked.length;
    // The client's writes go on, on the new primary.
    for (let t = 0; t < 200 && acked.length < ackedAtPromotion + 20; t++) await sleep(50);
    stop = true;
    await writer;
    expect(acked.length).toBeGreaterThanOrEqual(ackedAtPromotion + 20);
    // It moved once, to the promoted replica: told by a Sentinel's +switch-master, or found by asking them.
    expect(client.counters.primaryMovesAnnounced + client.counters.primaryMovesFound).toBe(1);
    // Every acknowledged write is on the new primary (asked directly, not through the client).
    const last = acked[acked.length - 1];
    const values = cli(promoted, port, ADMIN_USER, "mget", ...acked.map((s) => `seq:${s}`))
      .stdout.trim()
      .split("\n");
    const missing = acked.filter((s, k) => values[k] !== String(s));
    console.log(
      `Sentinel failover: every Sentinel named ${promoted} ${(promotedAfterMs / 1000).toFixed(1)} s after kill -9 ` +
        `(down-after 2000 ms); slowest client write ${slowestMs} ms; ${acked.length} writes acknowledged up to seq ${last}, ` +
        `${missing.length} missing`,
    );
    // The writes acknowledged before the kill may be lost only within replication's async window; the
    // ones after the promotion never.
    expect(missing.filter((s) => s > acked[ackedAtPromotion - 1])).toEqual([]);
    // The Sentinels' failover ran through their ACL user on the data nodes: nothing refused there.
    for (const ip of [IPS[1], IPS[2]]) expect(cli(ip, port, ADMIN_USER, "acl", "log").stdout.trim()).toBe("");
  }, 60_000);
});
