/**
 * The nodes' metrics, judged from outside: every host's redis-node-metrics.timer runs the collector
 * under real systemd, which publishes through the real awscli (signed with the instance role's IMDS
 * credentials) to the lab's CloudWatch stand-in. A load generator in the client namespace knows the
 * truth (its rate and its hit/miss mix); the published figures must match it. Runs on the cluster
 * suite's lab (created with a 10 s metrics period) after its other tests: the last scenario kills a master.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ClusterLab, masterOfSlot, role, tagForSlots } from "../../lab/clusterLab";
import { MetricDatum } from "../../lab/aws/state";
import { at, culprits, dim, firedAlarms, labAlarms, series, waitForMetrics } from "../../lab/labMetrics";
import { METRICS_NAMESPACE, MetricsInterval } from "../../components/monitoring/metrics";
import { EXPORTER_PORT } from "../../components/ec2/node/redisConf";
import { NodeAddress } from "../../components/ec2/topology";

const IOREDIS = require.resolve("ioredis");

export interface LoadResult {
  sent: number;
  /** GETs sent in each second (epoch second -> count): the truth for any period, however paced. */
  perSecond: Record<string, number>;
  hits: number;
  misses: number;
  startedAt: number;
  endedAt: number;
}

/**
 * `rate` GETs per second for `seconds` on one master (keys of one hash tag): 3 of every 4 read a key that
 * exists. Paced against the clock (a late tick sends what it owes), so every period sees the same rate.
 */
export async function knownLoad(
  c: ClusterLab,
  target: NodeAddress,
  tag: string,
  rate: number,
  seconds: number,
): Promise<LoadResult> {
  const script = `
const Redis = require(${JSON.stringify(IOREDIS)});
const fs = require("fs");
const [host, port, user, password, ca, tag, rate, seconds] = process.argv.slice(1);
const r = new Redis({ host, port: +port, username: user, password, tls: ca ? { ca: fs.readFileSync(ca) } : undefined, enableOfflineQueue: true });
(async () => {
  for (let i = 0; i < 300; i++) await r.set("{" + tag + "}:k" + i, "v");
  const startedAt = Date.now();
  let sent = 0, hits = 0, misses = 0;
  const perSecond = {};
  while (Date.now() - startedAt < seconds * 1000) {
    const owed = Math.floor(((Date.now() - startedAt) / 1000) * rate) - sent;
    const second = Math.floor(Date.now() / 1000);
    if (owed > 0) perSecond[second] = (perSecond[second] || 0) + owed;
    const batch = [];
    for (let j = 0; j < owed; j++, sent++) batch.push(r.get("{" + tag + "}:" + (sent % 4 === 3 ? "miss" + sent : "k" + (sent % 300))));
    for (const v of await Promise.all(batch)) v === null ? misses++ : hits++;
    await new Promise((res) => setTimeout(res, 5));
  }
  console.log(JSON.stringify({ sent, perSecond, hits, misses, startedAt, endedAt: Date.now() }));
  r.disconnect();
})().catch((e) => { console.error(e); process.exit(1); });
`;
  const r = await c.lab.client.exec(
    [
      "node",
      "-e",
      script,
      target.ip,
      String(target.port),
      "app",
      c.passwords.app,
      c.clientCa ?? "",
      tag,
      String(rate),
      String(seconds),
    ],
    { timeoutMs: (seconds + 60) * 1000 },
  );
  if (r.code !== 0) throw new Error(`load generator: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as LoadResult;
}

/**
 * Writes `valueBytes` values on one master (keys of one hash tag, never the same key twice): `burst` of
 * them first (16 at a time), then `rate` per second for up to `seconds` (less once `stopFile` exists). Each value is made by SETRANGE at its
 * last offset: a large value in memory for a command of a few bytes, so neither the AOF on the lab's small
 * data volume nor the replication backlog (counted in used_memory) grows with it. Errors are counted.
 */
export async function writeLoad(
  c: ClusterLab,
  target: NodeAddress,
  tag: string,
  o: { valueBytes: number; burst: number; rate: number; seconds: number; stopFile: string },
): Promise<{ written: number; errors: number; lastError: string }> {
  const script = `
const Redis = require(${JSON.stringify(IOREDIS)});
const fs = require("fs");
const [host, port, user, password, ca, tag, valueBytes, burst, rate, seconds, stopFile] = process.argv.slice(1);
const r = new Redis({ host, port: +port, username: user, password, tls: ca ? { ca: fs.readFileSync(ca) } : undefined });
let written = 0, errors = 0, i = 0, lastError = "";
const set = () => r.setrange("{" + tag + "}:fill" + i++, +valueBytes - 1, "x").then(() => written++, (e) => { errors++; lastError = e.message; });
(async () => {
  for (let b = 0; b < +burst; b += 16) await Promise.all(Array.from({ length: Math.min(16, +burst - b) }, set));
  const startedAt = Date.now();
  let sent = 0;
  while (Date.now() - startedAt < seconds * 1000 && !fs.existsSync(stopFile)) {
    const owed = Math.floor(((Date.now() - startedAt) / 1000) * rate) - sent;
    const batch = [];
    for (let j = 0; j < owed; j++, sent++) batch.push(set());
    await Promise.all(batch);
    await new Promise((res) => setTimeout(res, 20));
  }
  console.log(JSON.stringify({ written, errors, lastError }));
  r.disconnect();
})().catch((e) => { console.error(e); process.exit(1); });
`;
  const r = await c.lab.client.exec(
    [
      "node",
      "-e",
      script,
      target.ip,
      String(target.port),
      "app",
      c.passwords.app,
      c.clientCa ?? "",
      tag,
      String(o.valueBytes),
      String(o.burst),
      String(o.rate),
      String(o.seconds),
      o.stopFile,
    ],
    { timeoutMs: (o.seconds + 60) * 1000 },
  );
  if (r.code !== 0) throw new Error(`write load: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as {
    written: number;
    errors: number;
    lastError: string;
  };
}

export function metricsScenarios(lab: () => ClusterLab, periodSeconds: MetricsInterval): void {
  const period = periodSeconds * 1000;
  let recordingFrom = 0;

  test("every node publishes its metrics through awscli, signed as its own instance, to our namespace only, even through a slow IMDS", async () => {
    const c = lab();
    // Data collected once the cluster is whole (the suite's set-up waited for that), while every IMDS answer
    // takes 1.5 s: past awscli's default (one attempt of 1 s), within the nodes' AWS_CLI_IMDS settings.
    await c.aws.setImdsDelay(1500);
    const since = Date.now();
    const all = await waitForMetrics(
      c,
      (m) => c.nodes.every((n) => series(m, "Up", n.node.name).some((d) => at(d) > since)),
      2 * period + 30_000,
    ).finally(() => c.aws.setImdsDelay(0));
    // The healthy cluster's record starts once every node reported it whole (ClusterStateOk 1): before that
    // the cluster was forming, which takes longer than the alarms' 2 x 10 s on a busy machine (seen in CI:
    // six hosts took 183 s to boot and cluster-state fired for the formation).
    const whole = (n: string) => series(all, "ClusterStateOk", n).find((d) => d.value === 1);
    recordingFrom = Math.max(
      ...c.nodes.map((n) => at(series(all, "Up", n.node.name)[0])),
      ...c.nodes.map((n) => {
        const d = whole(n.node.name);
        return d ? at(d) : since;
      }),
    );
    for (const [i, n] of c.nodes.entries()) {
      const up = series(all, "Up", n.node.name);
      expect(up.length).toBeGreaterThanOrEqual(2);
      // The endpoint records who signed: the node's own instance (its IMDS role credentials).
      expect(up.every((d) => d.instanceId === c.hosts[i].instanceId && d.sourceIp === n.ip)).toBe(true);
      expect(up.every((d) => d.namespace === METRICS_NAMESPACE && d.storageResolution === 1)).toBe(true);
      expect(dim(up[0], "Shard")).toBe(String(n.node.shard));
      expect(dim(up[0], "Stack")).toBe("redis-stack-lab");
    }
    // Stack-wide copies exist for the alarms, and every node says its cluster is ok.
    const wide = all.filter((d) => d.metricName === "ClusterStateOk" && d.dimensions.length === 1);
    expect(wide.length).toBeGreaterThanOrEqual(c.nodes.length);
    const last = c.nodes.map((n) => series(all, "ClusterStateOk", n.node.name).pop()?.value);
    expect(last).toEqual(c.nodes.map(() => 1));
    const masters = c.nodes.map((n) => series(all, "MastersSeen", n.node.name).pop()?.value);
    expect(masters).toEqual(c.nodes.map(() => 3));
    // The collector runs as a systemd unit on its timer; nothing it did failed.
    for (const h of c.hosts) {
      const r = await h.sh(
        "systemctl show -p Result --value redis-node-metrics.service; systemctl is-active redis-node-metrics.timer",
      );
      const state = r.stdout.trim().split("\n");
      // A failed run says why in its journal: shown with the failure, not hidden behind "exit-code".
      if (state[0] !== "success")
        console.log(`${h.name}: ${(await h.sh("journalctl -u redis-node-metrics.service -n 40 --no-pager")).stdout}`);
      expect(state).toEqual(["success", "active"]);
    }
  });

  test("under a known load the published hit rate, ops/s, latency and memory match the truth", async () => {
    const c = lab();
    const target = await masterOfSlot(c, 0);
    const name = target.node.name;
    const rate = 200;
    const load = await knownLoad(c, target, tagForSlots(0, 5460, "m"), rate, 3 * periodSeconds + 6);
    const truthHitRate = (100 * load.hits) / (load.hits + load.misses);
    const truthRate = load.sent / ((load.endedAt - load.startedAt) / 1000);
    expect(truthHitRate).toBeCloseTo(75, 0);
    const all = await waitForMetrics(
      c,
      (m) => series(m, "Up", name).some((d) => at(d) > load.endedAt),
      2 * period + 20_000,
    );
    // A data point covers the time since the node's previous collection: one period, or more when a run
    // outlasted its period and systemd skipped the next trigger (the slow IMDS of the test before).
    const ups = series(all, "Up", name).map(at);
    const from = (d: MetricDatum) => {
      const before = ups.filter((t) => t < at(d));
      return before.length ? Math.max(...before) : at(d) - period;
    };
    // Periods that lie wholly inside the load.
    const inside = (d: MetricDatum) => from(d) - 1500 >= load.startedAt && at(d) <= load.endedAt;
    const hit = series(all, "HitRate", name).filter(inside);
    const ops = series(all, "OpsPerSecond", name).filter(inside);
    console.log(
      `known load on ${name}: ${load.sent} GETs at ${truthRate.toFixed(1)}/s, hit rate ${truthHitRate.toFixed(2)} %; ` +
        `published hit rate ${hit.map((d) => d.value).join(", ")} %, ops/s ${ops.map((d) => d.value).join(", ")}`,
    );
    expect(hit.length).toBeGreaterThanOrEqual(1);
    for (const d of hit) expect(Math.abs((d.value ?? 0) - truthHitRate)).toBeLessThanOrEqual(2);
    expect(ops.length).toBeGreaterThanOrEqual(1);
    // Each period against what was sent in that period (a generator starved for CPU sends late, in bursts).
    const sentIn = (d: MetricDatum) => {
      let n = 0;
      const [first, end] = [Math.floor(from(d) / 1000), Math.floor(at(d) / 1000)];
      for (let sec = first; sec < end; sec++) n += load.perSecond[String(sec)] ?? 0;
      return n / (end - first);
    };
    console.log(`GETs/s sent in those periods: ${ops.map((d) => sentIn(d).toFixed(1)).join(", ")}`);
    for (const d of ops) expect(Math.abs((d.value ?? 0) - sentIn(d)) / sentIn(d)).toBeLessThanOrEqual(0.1);
    // Windowed percentiles: present for the load's periods and ordered.
    const pts = ["LatencyP50", "LatencyP95", "LatencyP99", "LatencyP999"].map((m) =>
      series(all, m, name).filter(inside).pop(),
    );
    const values = pts.map((d) => d?.value ?? NaN);
    expect(values.every((v) => v > 0)).toBe(true);
    expect([...values].sort((a, b) => a - b)).toEqual(values);
    // INFO latencystats carries p95 too (redis.conf), for whoever reads INFO directly.
    expect((await c.cli(target, ["info", "latencystats"])).stdout).toMatch(
      /latency_percentiles_usec_get:p50=[\d.]+,p95=/,
    );
    // Memory percent is used_memory over maxmemory as INFO tells an outside client.
    const info = (await c.cli(target, ["info", "memory"])).stdout;
    const used = Number(/used_memory:(\d+)/.exec(info)?.[1]);
    const max = Number(/^maxmemory:(\d+)/m.exec(info)?.[1]);
    const pct = series(all, "MemoryPercentOfMaxmemory", name).pop()?.value ?? NaN;
    expect(Math.abs(pct - (100 * used) / max)).toBeLessThan(1);
    // The stack's own alarms, replayed over everything published so far (boot, the tests above, this
    // load): a healthy cluster fires none of them.
    const fired = firedAlarms(labAlarms(c, periodSeconds), all, recordingFrom, load.endedAt);
    console.log(
      `alarms replayed over ${((load.endedAt - recordingFrom) / 1000).toFixed(0)} s of a healthy cluster: ${fired.join(", ") || "none fired"}`,
    );
    expect(fired).toEqual([]);
  });

  test("every node's Prometheus exporter (9121) agrees with INFO, as the least-privileged monitor user", async () => {
    const c = lab();
    /** An unlabelled series' value in the exposition text. */
    const metric = (text: string, name: string): number | undefined => {
      const line = text.split("\n").find((l) => l.startsWith(`${name} `));
      return line === undefined ? undefined : Number(line.split(" ").pop());
    };
    for (const [i, n] of c.nodes.entries()) {
      const scrape = await c.lab.client.exec([
        "curl",
        "-fsS",
        "--max-time",
        "10",
        `http://${n.ip}:${EXPORTER_PORT}/metrics`,
      ]);
      expect(scrape.code).toBe(0);
      const text = scrape.stdout;
      expect(metric(text, "redis_up")).toBe(1);
      expect(metric(text, "redis_cluster_state")).toBe(1);
      expect(metric(text, "redis_cluster_slots_assigned")).toBe(16384);
      expect(metric(text, "redis_cluster_known_nodes")).toBe(c.nodes.length);
      const info = (await c.cli(n, ["info"])).stdout;
      const field = (k: string) => Number(new RegExp(`^${k}:(\\d+)`, "m").exec(info)?.[1]);
      expect(metric(text, "redis_memory_max_bytes")).toBe(field("maxmemory"));
      expect(metric(text, "redis_connected_slaves")).toBe(field("connected_slaves"));
      const role = /^role:(\w+)/m.exec(info)?.[1];
      expect(text).toMatch(new RegExp(`^redis_instance_info\\{[^}]*role="${role}"`, "m"));
      // The exporter runs as its package's user and reads its password from a file only it can read.
      const own = await c.hosts[i].sh(
        "systemctl is-active prometheus-redis-exporter; stat -c '%U %a' /etc/redis-stack-exporter/pass.json; " +
          "ps -o user= -p $(systemctl show -p MainPID --value prometheus-redis-exporter)",
      );
      expect(own.stdout.trim().split("\n")).toEqual(["active", "prometheus 600", "prometheus"]);
    }
    // The monitor user cannot read data or the config (CONFIG GET would show masterauth).
    const monitorPass = (await c.aws.parameters()).find((p) => p.name === c.ssm.monitorPassword)?.value ?? "";
    expect(monitorPass).not.toBe("");
    const asMonitor = (args: string[]) =>
      c.lab.client.exec(
        [
          "redis-cli",
          "-h",
          c.nodes[0].ip,
          "-p",
          String(c.nodes[0].port),
          "--user",
          "monitor",
          "--tls",
          "--cacert",
          c.clientCa ?? "",
          ...args,
        ],
        { env: { REDISCLI_AUTH: monitorPass } },
      );
    // The exporters' scrapes (every node was scraped above, and by itself) were refused nothing: no ACL
    // LOG entry names the monitor user (earlier tests leave entries of their own, for app).
    for (const n of c.nodes) expect((await c.cli(n, ["acl", "log", "128"])).stdout).not.toMatch(/^username\nmonitor$/m);
    expect((await asMonitor(["get", "k"])).stdout).toMatch(/NOPERM/);
    expect((await asMonitor(["config", "get", "masterauth"])).stdout).toMatch(/NOPERM/);
  });

  test("each failure fires its own alarm, from the node that has it, and nothing else fires", async () => {
    const c = lab();
    const before = c.settings;
    const ec2 = before.ec2;
    if (!ec2) throw new Error("EC2 settings needed");
    const host = (n: NodeAddress) => c.hosts[c.nodes.indexOf(n)];
    const [m0, m1, m2] = [await masterOfSlot(c, 0), await masterOfSlot(c, 5461), await masterOfSlot(c, 10923)];
    const replicaOf = (m: NodeAddress) => {
      const r = c.nodes.find((n) => n.node.shard === m.node.shard && n !== m);
      if (!r) throw new Error(`no replica in shard ${m.node.shard}`);
      return r;
    };
    const [r0, r1, r2] = [replicaOf(m0), replicaOf(m1), replicaOf(m2)];
    const dataDir = "/var/lib/redis";

    // The smallest maxmemory the stack accepts, changed the way a user would (the desired-settings
    // parameter; no restart), so a burst of writes fills a node.
    const small = 256 * 1024 * 1024;
    await c.deploy({ ...before, ec2: { ...ec2, maxmemoryBytes: small } }, { timeoutMs: 120_000 });
    expect((await c.cli(m2, ["config", "get", "maxmemory"])).stdout).toContain(String(small));

    // Five failures at once, each on its own node (scenario: the alarms it must fire):
    const faultsAt = Date.now();
    // Fill memory on shard 2's master, then keep writing until the alarms are in: memory, evictions.
    const stopFile = path.join(os.tmpdir(), `lab-fill-stop-${faultsAt}`);
    const load = writeLoad(c, m2, tagForSlots(10923, 16383, "fill"), {
      valueBytes: 1024 * 1024,
      burst: 272,
      // Any eviction breaches (alarmEvictionsPerSecond 0): 2 values a second keep evicting without loading the
      // node so much that its collector misses periods (at 8 it missed one in three, and 5 of 5 never held).
      rate: 2,
      seconds: 320,
      stopFile,
    });
    // Stop shard 2's replica's publisher (its Redis stays up): that node's silence.
    await host(r2).sh("systemctl stop redis-node-metrics.timer");
    // Lose shard 0's replica (its Redis stops; the instance runs on): replica-missing, and the node says
    // its Redis does not answer (cluster-state).
    await host(r0).sh("systemctl stop redis-node");
    // Make shard 1's master's RDB snapshot fail (the redis user may not create files in its data dir): rdb-save-failed.
    const mode = (await host(m1).sh(`stat -c %a ${dataDir}`)).stdout.trim();
    await host(m1).sh(`chmod 0500 ${dataDir}`);
    expect((await c.cli(m1, ["bgsave"])).stdout).toMatch(/Background saving started/);
    // Fill shard 1's replica's data volume to 88 % (what an AOF or RDB growing there would do): disk.
    const fill = await host(r1).sh(
      // df's percent, like the collector's, is used / (used + available to non-root).
      `set -e; read -r used avail < <(df -B1 --output=used,avail ${dataDir} | tail -1); ` +
        `fallocate -l $(( (used + avail) * 88 / 100 - used )) ${dataDir}/lab-disk-fill; df --output=pcent ${dataDir} | tail -1`,
    );
    expect(fill.code).toBe(0);

    const expected: Record<string, string[]> = {
      memory: [m2.node.name],
      evictions: [m2.node.name],
      [`${r2.node.name}-silent`]: [r2.node.name],
      "replica-missing": [m0.node.name],
      "cluster-state": [r0.node.name],
      "rdb-save-failed": [m1.node.name],
      disk: [r1.node.name],
    };
    const specs = labAlarms(c, periodSeconds);
    const from = Math.ceil(faultsAt / period) * period;
    // evictions needs 5 consecutive periods of data: a collection that misses its period on the loaded
    // lab restarts its count in the replay (stricter than CloudWatch, which may look further back:
    // lab/alarmReplay.ts), so the bound leaves room for several.
    const deadline = Date.now() + 280_000;
    let fired: string[] = [];
    let all: MetricDatum[] = [];
    let to = from;
    do {
      await new Promise((r) => setTimeout(r, period));
      all = await c.aws.metrics();
      to = Math.floor(Date.now() / period) * period - period;
      fired = firedAlarms(specs, all, from, to).sort();
    } while (!Object.keys(expected).every((id) => fired.includes(id)) && Date.now() < deadline);
    const who = Object.fromEntries(
      specs.filter((s) => fired.includes(s.id)).map((s) => [s.id, culprits(c, s, all, from, to)]),
    );
    fs.writeFileSync(stopFile, "");
    const written = await load;
    fs.rmSync(stopFile, { force: true });
    console.log(
      `five failures at once (${((to - from) / 1000).toFixed(0)} s replayed): ${JSON.stringify(who)}; ` +
        `fill on ${m2.node.name}: ${written.written} values of 1 MiB, ${written.errors} errors ${written.lastError}; ${r1.node.name} disk ${fill.stdout.trim()}`,
    );
    // The filled node's evictions per collection ("-": a period without one), for a run that misses the alarm.
    const evicted = new Map(
      series(all, "EvictionsPerSecond", m2.node.name).map((d) => [Math.floor(at(d) / period), d.value]),
    );
    const periods: string[] = [];
    for (let p = Math.floor(from / period); p <= Math.floor(to / period); p++)
      periods.push(String(evicted.get(p) ?? "-"));
    console.log(`${m2.node.name} EvictionsPerSecond per period: ${periods.join(" ")}`);

    // Put everything back (the filled shard emptied: the kill scenario that follows must not see a full
    // node; the small maxmemory can stay).
    await host(r2).sh("systemctl start redis-node-metrics.timer");
    await host(r0).sh("systemctl start redis-node");
    await host(m1).sh(`chmod ${mode} ${dataDir}`);
    await host(r1).sh(`rm -f ${dataDir}/lab-disk-fill`);
    expect((await c.cli(m1, ["bgsave"])).stdout).toMatch(/Background saving started/);
    expect((await c.cli(m2, ["flushall", "sync"])).stdout).toMatch(/OK/);
    await c.waitConverged(120_000);

    expect(written.errors).toBe(0);
    // Writing 1 MiB values into a full node evicts as fast as it writes: on a loaded 2-core lab its p99
    // can cross the latency threshold too. That alarm is the fill's own doing, allowed on that node alone.
    const mayAlsoFire: Record<string, string[]> = { "latency-p99": [m2.node.name] };
    const extra = Object.fromEntries(Object.entries(who).filter(([id]) => !(id in expected)));
    for (const [id, nodes] of Object.entries(extra)) expect({ [id]: nodes }).toEqual({ [id]: mayAlsoFire[id] });
    expect(Object.fromEntries(Object.entries(who).filter(([id]) => id in expected))).toEqual(expected);
    // The failed save was seen by an outside client too, and the retried one succeeded.
    expect((await c.cli(m1, ["info", "persistence"])).stdout).toMatch(/rdb_last_bgsave_status:ok/);
  }, 600_000);

  test("a master's instance dies: role, replicas and the dead node's silence show within 2 periods", async () => {
    const c = lab();
    const victim = await masterOfSlot(c, 0);
    const replica = c.nodes.find((n) => n.node.shard === victim.node.shard && n !== victim);
    if (!replica) throw new Error("no replica in shard 0");
    const killedAt = Date.now();
    await c.hosts[c.nodes.indexOf(victim)].powerLoss();
    const within = killedAt + 2 * period + 5000;
    const all = await waitForMetrics(
      c,
      (m) =>
        series(m, "RoleChanged", replica.node.name).some((d) => at(d) > killedAt && d.value === 1) &&
        series(m, "ConnectedReplicas", replica.node.name).some((d) => at(d) > killedAt && d.value === 0),
      2 * period + 15_000,
    );
    expect(await role(c, replica)).toBe("master");
    const changed = series(all, "RoleChanged", replica.node.name).find((d) => at(d) > killedAt && d.value === 1);
    expect(changed).toBeDefined();
    expect(at(changed as MetricDatum)).toBeLessThanOrEqual(within);
    const isMaster = series(all, "IsMaster", replica.node.name).filter((d) => at(d) > killedAt);
    expect(isMaster.some((d) => d.value === 1)).toBe(true);
    const noReplica = series(all, "ConnectedReplicas", replica.node.name).find((d) => at(d) > killedAt);
    expect(noReplica?.value).toBe(0);
    expect(at(noReplica as MetricDatum)).toBeLessThanOrEqual(within);
    // The dead node says nothing after its death (the silence alarm's input).
    expect(series(all, "Up", victim.node.name).filter((d) => d.receivedAt > killedAt + 2000)).toHaveLength(0);

    // Replayed through the stack's alarms: the failover notice, the shard without its replica and the dead
    // node's silence fire (each after its M of N periods), and nothing else does.
    const specs = labAlarms(c, periodSeconds);
    const longest = Math.max(...specs.map((x) => x.evaluationPeriods)) * period;
    // Each alarm needs its M consecutive periods of data: a collection that misses its period (a run
    // longer than the period on the loaded lab) restarts the count, as it would in CloudWatch. So the
    // replay is repeated on fresh data until the expected alarms are in, within a bound.
    const expected = ["failover", "replica-missing", `${victim.node.name}-silent`].sort();
    const from = Math.floor(killedAt / period) * period;
    const deadline = Date.now() + longest + 12 * period;
    let fired: string[] = [];
    let later: MetricDatum[] = [];
    do {
      await new Promise((r) => setTimeout(r, period));
      later = await c.aws.metrics();
      fired = firedAlarms(specs, later, from, Math.floor(Date.now() / period) * period - period).sort();
    } while (!expected.every((id) => fired.includes(id)) && Date.now() < deadline);
    const gaps = (name: string) =>
      series(later, "ConnectedReplicas", name)
        .filter((d) => at(d) > killedAt)
        .map((d) => `${new Date(at(d)).toISOString().slice(14, 21)}=${d.value}`)
        .join(" ");
    console.log(
      `alarms replayed after the kill of ${victim.node.name} (${((Date.now() - killedAt) / 1000).toFixed(0)} s later): ` +
        `${fired.join(", ")}; ${replica.node.name} ConnectedReplicas ${gaps(replica.node.name)}`,
    );
    // Once the failover is over, the other nodes count three masters again (the replica took over).
    for (const n of c.nodes.filter((x) => x !== victim))
      expect(series(later, "MastersSeen", n.node.name).pop()?.value).toBe(3);
    expect(fired).toEqual(expected);
  }, 300_000);
}
