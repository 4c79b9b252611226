/**
 * The Prometheus path of an EC2 stack (monitoring/prometheus/): promtool checks the configuration and the
 * alert rules and runs the rules' own tests (redis-stack.rules.test.yml: each rule fires on input that
 * breaks it for its window, and not otherwise). The rules stay in step with the CloudWatch alarms
 * (components/monitoring/alarms.ts): one rule per alarm of the prod stack, or a listed reason why none; the alarm's id,
 * severity, window, threshold and runbook row. They read only series the exporter really exports, and the
 * scrape job labels the prod stack's instances as the rules expect.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { AlarmSpec, alarmSpecs, Comparison, monitoringInput, RUNBOOK_URL } from "../../components/monitoring/alarms";
import { EvictionPolicy } from "../../components/config/settings";
import { stackDimension } from "../../components/monitoring/metrics";
import { EXPORTER_PORT } from "../../components/ec2/node/redisConf";
import { planTopology } from "../../components/ec2/topology";
import { stackSettings } from "../../lab/stackFiles";
import { byType, runStack, unwrapSecrets } from "./support/stackHarness";

const DIR = path.resolve(__dirname, "../../monitoring/prometheus");
const RULES_FILE = path.join(DIR, "redis-stack.rules.yml");
const CONFIG_FILE = path.join(DIR, "prometheus.yml");
const EXPORTER_METRICS = path.resolve(__dirname, "fixtures/redis-exporter-1.45.metrics.txt");

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
interface Relabel {
  source_labels?: string[];
  separator?: string;
  regex?: string;
  target_label: string;
  replacement?: string;
}
interface ScrapeConfig {
  job_name: string;
  ec2_sd_configs: { region: string; filters: { name: string; values: string[] }[] }[];
  relabel_configs: Relabel[];
}
interface PrometheusConfig {
  global: { scrape_interval: string; evaluation_interval: string };
  rule_files: string[];
  scrape_configs: ScrapeConfig[];
}

const rulesText = fs.readFileSync(RULES_FILE, "utf8");
const rules = (yaml.load(rulesText) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const config = yaml.load(fs.readFileSync(CONFIG_FILE, "utf8")) as PrometheusConfig;
const job = config.scrape_configs[0];
/** CloudWatch alarms deliberately without a rule, with the reason the rules file gives. */
const absent = new Map([...rulesText.matchAll(/^#\s+absent ([a-z0-9-]+): (.+)$/gm)].map((m) => [m[1], m[2]]));

// The prod stack's alarms, as `pulumi up` creates them (prodStack.test.ts checks the component does).
/** The value, or a failed test naming what was missing. */
function must<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`no ${what}`);
  return value;
}

const settings = stackSettings("prod");
const ec2 = must(settings.ec2, "EC2 settings in the prod stack");
const STACK = stackDimension("redis-stack", "prod");
const nodes = planTopology(ec2.shards, ec2.replicasPerShard, 3).map((n) => ({ name: n.name, shard: n.shard }));
const specsFor = (maxmemoryPolicy: EvictionPolicy): AlarmSpec[] =>
  alarmSpecs(monitoringInput(ec2, { ...settings, maxmemoryPolicy }, STACK, nodes));
const specs = specsFor(settings.maxmemoryPolicy);
/** The README row an alarm points to (the per-node alarms share `node-silent`). */
const rowOf = (s: AlarmSpec) => /\(([a-z0-9-]+)\)\.$/.exec(s.description)?.[1] ?? "";
/** The alarm label a rule gives an alert on this node (it may be templated with the node's name). */
const alarmLabel = (r: Rule, node: string) => r.labels.alarm.replace("{{ $labels.node }}", node);
const rulesOf = (s: AlarmSpec) => rules.filter((r) => alarmLabel(r, s.dimensions.Node ?? "") === s.id);
const camel = (id: string) => id.replace(/(^|-)([a-z0-9])/g, (_m, _d, c: string) => c.toUpperCase());
const seconds = (d: string | undefined) => (d ? Number(/^(\d+)m$/.exec(d)?.[1] ?? NaN) * 60 : 0);

const hasPromtool = spawnSync("promtool", ["--version"]).status === 0;
if (!hasPromtool)
  console.log(
    `promtool not installed: ${process.env.CI === "true" ? "failing (CI must have it)" : "skipping the promtool test (bash lab/install-packages.sh)"}`,
  );
(hasPromtool || process.env.CI === "true" ? test : test.skip)(
  "promtool: the config and the rules are valid, and every rule passes its firing and quiet cases",
  () => {
    for (const args of [
      ["check", "config", CONFIG_FILE], // checks the rule file it names too
      ["check", "rules", RULES_FILE],
      ["test", "rules", path.join(DIR, "redis-stack.rules.test.yml")],
    ]) {
      const r = spawnSync("promtool", args, { cwd: DIR, encoding: "utf8" });
      expect(`${r.stdout}${r.stderr}`).toContain("SUCCESS");
      expect(r.status).toBe(0);
    }
  },
);

test("every CloudWatch alarm of the prod stack has its rule, or is listed as absent with a reason; no other rule", () => {
  expect(specs.length).toBeGreaterThan(10);
  for (const s of specs) {
    if (absent.has(rowOf(s))) expect(rulesOf(s)).toEqual([]);
    else expect(rulesOf(s).length).toBeGreaterThan(0);
  }
  expect([...absent.keys()].sort()).toEqual(["backup-stale", "disk", "latency-p99", "tls-cert-expiry"]);
  for (const [id, reason] of absent) {
    expect(specs.map(rowOf)).toContain(id);
    expect(reason.length).toBeGreaterThan(40);
  }
  // Every rule stands for an alarm that exists (the node-silent rule for each node's).
  for (const r of rules) expect(specs.some((s) => rulesOf(s).includes(r))).toBe(true);
});

test("the monitoring page's Prometheus paragraph names the port, the files and the alarms without a rule", () => {
  const monitoring = fs.readFileSync(path.resolve(__dirname, "../../docs/monitoring.md"), "utf8");
  const paragraph = monitoring.slice(monitoring.indexOf("**Prometheus**"));
  expect(paragraph.length).toBeGreaterThan(500);
  for (const fact of [
    `port ${EXPORTER_PORT}`,
    "`monitoring/prometheus/prometheus.yml`",
    "`monitoring/prometheus/redis-stack.rules.yml`",
    "monitoring/prometheus/redis-stack.rules.test.yml",
    ...[...absent.keys()].map((id) => `\`${id}\``),
  ])
    expect(paragraph).toContain(fact);
});

test("each rule is named after its alarm and has its severity, window and runbook row", () => {
  // The memory alarm's severity follows maxmemoryPolicy: the rules carry both, split on the policy.
  const severities = (s: AlarmSpec) =>
    new Set((["allkeys-lru", "noeviction"] as const).map((p) => specsFor(p).find((x) => x.id === s.id)?.severity));
  for (const s of specs) {
    const mine = rulesOf(s);
    if (mine.length === 0) continue;
    expect(new Set(mine.map((r) => r.labels.severity))).toEqual(severities(s));
    for (const r of mine) {
      expect(r.alert).toBe(`Redis${camel(rowOf(s))}`);
      // "M of M periods" is `for: (M - 1) periods`; "M of N" (N > M) has no rule (latency-p99 is absent).
      expect(s.datapointsToAlarm).toBe(s.evaluationPeriods);
      expect(seconds(r.for)).toBe((s.datapointsToAlarm - 1) * s.periodSeconds);
      expect(r.annotations.runbook).toBe(`${RUNBOOK_URL} (${rowOf(s)})`);
    }
  }
});

test("thresholds: the alarms' own (the defaults), in the same comparison", () => {
  const op: Record<Comparison, string> = {
    GreaterThanOrEqualToThreshold: ">=",
    GreaterThanThreshold: ">",
    LessThanThreshold: "<",
    LessThanOrEqualToThreshold: "<=",
  };
  const byId = (id: string) =>
    must(
      specs.find((s) => s.id === id),
      `alarm ${id}`,
    );
  // Numeric thresholds: the expression compares with the alarm's threshold.
  for (const id of ["memory", "evictions", "rejected-connections", "rdb-stale"]) {
    const s = byId(id);
    for (const r of rulesOf(s)) expect(r.expr).toContain(`${op[s.comparison]} ${s.threshold}`);
  }
  expect(byId("memory").threshold).toBe(90);
  expect(byId("evictions").threshold).toBe(1);
  // "...Ok < 1" on a 1/0 flag is "== 0"; the plan's counts (masters-missing, replica-missing), role changes
  // and silence are checked by the promtool tests.
  for (const id of ["cluster-state", "rdb-save-failed", "aof-write-failed"]) {
    expect(byId(id)).toMatchObject({ comparison: "LessThanThreshold", threshold: 1 });
    for (const r of rulesOf(byId(id))) expect(r.expr).toMatch(/== 0/);
  }
});

test("the rules read only series prometheus-redis-exporter 1.45 exports (and the scrape's up), counters through irate", () => {
  const exported = new Map(
    fs
      .readFileSync(EXPORTER_METRICS, "utf8")
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("#"))
      .map((l) => l.split(" ") as [string, string]),
  );
  expect(exported.get("redis_up")).toBe("gauge");
  for (const r of rules) {
    for (const [name] of r.expr.matchAll(/\bredis_[a-z0-9_]+/g))
      expect([name, exported.has(name)]).toEqual([name, true]);
    for (const [, name] of r.expr.matchAll(/\birate\((redis_[a-z0-9_]+)\[/g))
      expect(exported.get(name)).toBe("counter");
    for (const [, j] of r.expr.matchAll(/\bup\{job="([^"]+)"\}/g)) expect(j).toBe(job.job_name);
  }
});

describe("the scrape job on the prod stack's instances", () => {
  let instances: { tags: Record<string, string>; ip: string; node: string }[] = [];
  beforeAll(async () => {
    const run = await runStack("prod");
    if (run.error) throw run.error;
    const inputs = (type: string): Record<string, unknown>[] =>
      byType(run.resources, type).map((r) => ({
        ...(unwrapSecrets(r.inputs) as Record<string, unknown>),
        name: r.name,
      }));
    const enis = inputs("aws:ec2/networkInterface:NetworkInterface");
    instances = inputs("aws:ec2/instance:Instance").map((i) => {
      const eniId = (i.primaryNetworkInterface as { networkInterfaceId: string }).networkInterfaceId;
      const eni = must(
        enis.find((e) => `${String(e.name)}-id` === eniId),
        `ENI ${eniId}`,
      );
      return {
        tags: i.tags as Record<string, string>,
        ip: (eni.privateIps as string[])[0],
        node: String(eni.description).split(" ")[0],
      };
    });
  });

  /** The target's labels as Prometheus's relabelling makes them from EC2's meta labels. */
  const relabel = (meta: Record<string, string>): Record<string, string> => {
    const labels = { ...meta };
    for (const r of job.relabel_configs) {
      const value = (r.source_labels ?? []).map((l) => labels[l] ?? "").join(r.separator ?? ";");
      const m = new RegExp(`^(?:${r.regex ?? "(.*)"})$`).exec(value);
      if (m) labels[r.target_label] = (r.replacement ?? "$1").replace(/\$(\d)/g, (_x, k: string) => m[Number(k)] ?? "");
    }
    return labels;
  };

  test("the filters select exactly the stack's nodes; each target is <private ip>:9121 with node, shard and stack labels", () => {
    expect(instances).toHaveLength(nodes.length);
    const sd = job.ec2_sd_configs[0];
    expect(sd.region).toBe(ec2.region);
    for (const i of instances) {
      for (const f of sd.filters) {
        if (f.name.startsWith("tag:")) expect(f.values).toContain(i.tags[f.name.slice(4)]);
        if (f.name === "tag-key") for (const key of f.values) expect(Object.keys(i.tags)).toContain(key);
      }
      const meta: Record<string, string> = { __meta_ec2_private_ip: i.ip, __address__: `${i.ip}:80` };
      for (const [k, v] of Object.entries(i.tags)) meta[`__meta_ec2_tag_${k.replace(/[^a-zA-Z0-9_]/g, "_")}`] = v;
      const planned = must(
        nodes.find((n) => n.name === i.node),
        `planned node ${i.node}`,
      );
      expect(relabel(meta)).toMatchObject({
        __address__: `${i.ip}:${EXPORTER_PORT}`,
        node: planned.name,
        shard: String(planned.shard),
        stack: STACK,
      });
    }
  });

  test("scrapes and evaluates at the alarms' period, and loads the rules", () => {
    // Every alarm with a rule evaluates at the collection period (the stale-backup ones, a backup interval each, have none).
    const withRule = specs.filter((s) => !absent.has(rowOf(s)));
    expect(withRule.every((s) => s.periodSeconds === ec2.metricsIntervalSeconds)).toBe(true);
    expect(config.global).toEqual({
      scrape_interval: `${ec2.metricsIntervalSeconds}s`,
      evaluation_interval: `${ec2.metricsIntervalSeconds}s`,
    });
    expect(config.rule_files).toEqual([path.basename(RULES_FILE)]);
    expect(config.scrape_configs).toHaveLength(1);
  });
});
