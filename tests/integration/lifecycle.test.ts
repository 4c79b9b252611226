/**
 * The prod stack's life on one lab (booted once: each boot costs minutes of CI), with the real semantics of
 * EC2 and cloud-init (issue: real hosts): the first boot while the mirror is unreachable (a NAT not routing
 * yet), the instance role confined to this stack's parameters, the faults as EC2 makes them and the client
 * through them (faultScenarios, clientScenarios), real reboots (same instance id: cloud-init does not run
 * the user-data again; the every-boot units do what must hold), a certificate rotated in SSM reaching the
 * node live, a replacement (new instance id: cloud-init runs the user-data again) that keeps its volume,
 * and day 2 (day2Scenarios).
 */
import * as fs from "fs";
import * as path from "path";
import { describeLab, CloudInitResult } from "../../lab/hosts/hostLab";
import { stackSettings } from "../../lab/stackFiles";
import {
  ClusterLab,
  createClusterLab,
  infoField,
  masterOfSlot,
  missingWrites,
  parseClusterNodes,
  RunningWriter,
  startWriter,
  tagForSlots,
  LAB_KEY_ARN,
} from "../../lab/clusterLab";
import { makePki } from "../../lab/pki";
import { SSM_SHIPPED_SCRIPTS } from "../../components/ec2/node/userData";
import { day2Scenarios } from "./day2Scenarios";
import { faultScenarios } from "./faultScenarios";
import { backupScenarios, restoreScenarios } from "./backupScenarios";

const settings = stackSettings("prod");
/**
 * The mirror stays unreachable until every node's apt-get update has failed as a whole (apt retries a
 * refused connection itself within one run, so refused connections alone do not show that node.sh saw a
 * failure): node.sh then retries, 3 s later, against a mirror that is back.
 */
const APT_RUN_FAILED = "Failed to fetch|Some index files failed to download";
const APT_OUTAGE_MAX_MS = 180_000;
/** The shards of the backup (backupScenarios reshards slots 0-99 first), by lowest slot. */
const RESHARDED_BACKUP_SHARDS = ["0-99,10923-16383", "100-5460", "5461-10922"];
/** The line the user-data's last step logs: one per run of the user-data. */
const FIRST_BOOT_DONE = "first boot of .* done";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeLab("node lifecycle on real hosts", () => {
  let c: ClusterLab;
  let boots: CloudInitResult[] = [];
  /** Per node: whether an apt-get update of its first boot had failed when the mirror came back. */
  let aptFailedDuringOutage: boolean[] = [];
  let outageMs = 0;
  const servedCertSerial = async (i: number) =>
    (
      await c.lab.client.sh(
        `openssl s_client -connect ${c.nodes[i].ip}:6379 -CAfile ${c.clientCa} </dev/null 2>/dev/null | openssl x509 -noout -serial`,
      )
    ).stdout.trim();
  const certSerial = (pem: string) =>
    c.lab.client.sh("openssl x509 -noout -serial", { input: pem }).then((r) => r.stdout.trim());

  beforeAll(async () => {
    c = await createClusterLab(settings, { log: (l) => console.log(l) });
    // The NAT is not routing yet: every connection to the mirror fails until each node's boot log shows a
    // failed apt-get update (a host not started yet answers nothing and counts as not yet).
    await c.aws.setAptReachable(false);
    const outage = (async () => {
      const started = Date.now();
      for (;;) {
        aptFailedDuringOutage = await Promise.all(
          c.hosts.map((h) =>
            h
              .sh(`grep -qE '${APT_RUN_FAILED}' /var/log/redis-stack.log`)
              .then((r) => r.code === 0)
              .catch(() => false),
          ),
        );
        if (aptFailedDuringOutage.every(Boolean) || Date.now() - started > APT_OUTAGE_MAX_MS) break;
        await sleep(1000);
      }
      outageMs = Date.now() - started;
      await c.aws.setAptReachable(true);
    })();
    boots = await c.boot();
    await outage;
    await c.waitConverged(60_000);
  }, 900_000);
  afterAll(async () => c?.destroy());

  test("first boot with the mirror unreachable: apt's silent failure is caught and retried, and every node comes up", async () => {
    // Every node's apt-get update had failed before the mirror came back.
    expect(aptFailedDuringOutage).toEqual(c.hosts.map(() => true));
    console.log(`mirror unreachable for the first ${(outageMs / 1000).toFixed(1)} s of boot`);
    expect(boots.map((b) => b.status)).toEqual(["done", "done", "done", "done", "done", "done"]);
    for (const b of boots) {
      // Debian 12's apt-get update reports the failed fetch (and exits 0 without --error-on=any).
      expect(b.output).toMatch(/Failed to fetch|Could not connect|Connection failed|Unable to connect/);
      expect(b.output).toMatch(/first boot of \S+ done/);
    }
    const info = (await c.cli("shard0-0", ["cluster", "info"])).stdout;
    expect(infoField(info, "cluster_state")).toBe("ok");
  });

  test("the instance role reads this stack's parameters only, and writes only its status", async () => {
    await c.aws.putParameter("/redis-stack/other/app-password", "SecureString", "another stack's secret");
    const h = c.hosts[0];
    const get = (name: string) =>
      h.sh(
        `aws ssm get-parameter --region us-east-1 --with-decryption --name ${name} --query Parameter.Value --output text`,
      );
    const own = await get(c.ssm.appPassword);
    expect(own.code).toBe(0);
    expect(own.stdout.trim()).toBe(c.passwords.app);
    const other = await get("/redis-stack/other/app-password");
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/AccessDeniedException/);
    expect(other.stdout).not.toContain("another stack's secret");
    // Its own secret, read without decryption, is KMS ciphertext under the cluster's key; KMS refuses to decrypt
    // it for the node outside SSM (the role's kms:Decrypt holds only through SSM), even with the right context.
    const parameterArn = `arn:aws:ssm:us-east-1:${LAB_KEY_ARN.split(":")[4]}:parameter${c.ssm.appPassword}`;
    const direct = await h.sh(
      `set -o pipefail; aws ssm get-parameter --region us-east-1 --name ${c.ssm.appPassword} --query Parameter.Value --output text | base64 -d > /tmp/blob && ` +
        `aws kms decrypt --region us-east-1 --ciphertext-blob fileb:///tmp/blob --encryption-context PARAMETER_ARN=${parameterArn} --query Plaintext --output text`,
    );
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toMatch(/AccessDeniedException.*kms:Decrypt/);
    expect(direct.stdout).toBe("");
    const write = await h.sh(
      `aws ssm put-parameter --region us-east-1 --overwrite --type String --name ${c.ssm.appPassword} --value x`,
    );
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/AccessDeniedException/);
    const denied = (await c.aws.requests()).filter(
      (r) => r.service === "ssm" && r.decision !== "allow" && r.sourceIp === c.nodes[0].ip,
    );
    expect(denied.map((r) => r.action).sort()).toEqual(["GetParameter", "PutParameter"]);
  });

  // The faults, on the freshly formed cluster (planned roles), and the client's scenarios after them.
  faultScenarios(() => c);

  test("rolling real reboots of a replica and a master: same instance ids, the user-data not run again, each back in the cluster, the master handing over first, 0 acknowledged writes lost", async () => {
    const writers: RunningWriter[] = await Promise.all(
      c.nodes
        .filter((n) => n.node.role === "master")
        .map((m) => startWriter(c, tagForSlots(m.node.slots.start, m.node.slots.end, "reboot"))),
    );
    const ids = c.hosts.map((h) => h.instanceId);
    const backInMs: number[] = [];
    const roleOf = async (i: number) => (await c.cli(c.nodes[i], ["role"])).stdout.split("\n")[0];
    const roles = await Promise.all(c.nodes.map((_, i) => roleOf(i)));
    // A replica (it resyncs), then a master (it hands over): each role's reboot. The other masters' reboots
    // take the same path; the nodeGeneration roll (day2Scenarios) restarts every node, masters included.
    // (The faults before left the roles where their failovers put them.)
    const order = [roles.indexOf("slave"), roles.indexOf("master")];
    expect(order.every((i) => i >= 0)).toBe(true);
    for (const i of order) {
      const h = c.hosts[i];
      // Redis's own run id tells a new process (a PID does not: PIDs start afresh at every boot, and the
      // same unit at the same point of boot got the same PID here).
      const runId = async () => infoField((await c.cli(c.nodes[i], ["info", "server"])).stdout, "run_id");
      const runBefore = await runId();
      const wasMaster = (await roleOf(i)) === "master";
      const count = async (pattern: string) =>
        Number((await h.sh(`grep -c '${pattern}' /var/log/redis-stack.log || true`)).stdout.trim());
      const [firstBootsBefore, preparesBefore, installsBefore] = await Promise.all(
        [FIRST_BOOT_DONE, "prepare: ", "installed .* from SSM"].map(count),
      );
      const rebootAt = Date.now();
      await h.reboot({ timeoutMs: 120_000 });
      expect(await h.waitBooted(180_000)).toMatch(/running|degraded/);
      await c.waitConverged(120_000);
      backInMs.push(Date.now() - rebootAt);
      expect(h.instanceId).toBe(ids[i]);
      expect((await h.sh("cat /var/lib/cloud/data/instance-id")).stdout.trim()).toBe(ids[i]);
      // The user-data did not run again; the every-boot units prepared the node once more.
      expect(await count(FIRST_BOOT_DONE)).toBe(firstBootsBefore);
      expect(await runId()).not.toBe(runBefore);
      expect(await count("prepare: ")).toBe(preparesBefore + 1);
      // The scripts from SSM are still the ones the user-data names: this prepare read nothing (the first
      // boot installed each of them once).
      expect(installsBefore).toBeGreaterThanOrEqual(SSM_SHIPPED_SCRIPTS.length);
      expect(await count("installed .* from SSM")).toBe(installsBefore);
      // A planned stop of a master (its ExecStop) makes its replica take over before Redis stops.
      if (wasMaster) {
        expect((await h.sh("grep 'handoff:' /var/log/redis-stack.log | tail -n 1")).stdout).toMatch(
          /took over in \d+s/,
        );
        expect((await c.cli(c.nodes[i], ["role"])).stdout.split("\n")[0]).toBe("slave");
      }
    }
    const results = await Promise.all(writers.map((w) => w.stop()));
    for (const [k, w] of writers.entries()) {
      const seqs = results[k].acked.map(([s]) => s);
      expect(seqs.length).toBeGreaterThan(100);
      expect(await missingWrites(c, w.tag, seqs)).toEqual([]);
    }
    // With the handoff, a master's reboot costs no failover timeout (about 3.6 s after a kill -9).
    for (const r of results) expect(Math.max(0, ...r.gaps.map((g) => g.ms))).toBeLessThan(2000);
    console.log(
      `rolling reboots: each node back in the cluster ${backInMs.map((ms) => (ms / 1000).toFixed(1)).join(", ")} s after its reboot; ` +
        `max write gap per shard ${results.map((r) => Math.max(0, ...r.gaps.map((g) => g.ms))).join(", ")} ms`,
    );
  }, 900_000);

  test("a certificate renewed in SSM is served live (no restart, 0 failed commands); one that does not chain to the CA, or another CA, is refused; the next boot keeps the renewed one", async () => {
    const i = 3;
    const name = c.nodes[i].node.name;
    const runId = async () => infoField((await c.cli(c.nodes[i], ["info", "server"])).stdout, "run_id");
    const before = await servedCertSerial(i);
    expect(before).toMatch(/^serial=/);
    const idBefore = await runId();
    const writer = await startWriter(c, tagForSlots(c.nodes[i].node.slots.start, c.nodes[i].node.slots.end, "tls"));
    for (const ext of ["crt", "key"]) fs.rmSync(path.join(c.pkiDir, `${name}.${ext}`));
    const renewed = makePki(c.pkiDir, [{ name, ip: c.nodes[i].ip }]).nodes.get(name);
    if (!renewed) throw new Error("no renewed certificate");
    const renewedSerial = await certSerial(renewed.certPem);
    // As pulumi up writes a renewed pair: the key first, then the certificate.
    await c.aws.putParameter(c.ssm.tlsKey(name), "SecureString", renewed.keyPem, LAB_KEY_ARN);
    await c.aws.putParameter(c.ssm.tlsCert(name), "String", renewed.certPem);
    let served = before;
    for (let t = 0; t < 60 && served !== renewedSerial; t++) {
      await new Promise((r) => setTimeout(r, 1000));
      served = await servedCertSerial(i);
    }
    expect(served).toBe(renewedSerial);
    expect(await runId()).toBe(idBefore);
    expect(
      (
        await c.hosts[i].sh("grep -c 'live: TLS material renewed from SSM and loaded' /var/log/redis-stack.log")
      ).stdout.trim(),
    ).toBe("1");
    // Replication and the cluster bus keep working over the new certificate.
    await c.waitConverged(60_000);
    const result = await writer.stop();
    expect(result.errors).toEqual([]);
    expect(
      await missingWrites(
        c,
        writer.tag,
        result.acked.map(([seq]) => seq),
      ),
    ).toEqual([]);
    // A certificate of another CA (what a wrong write to the parameter would give) is refused.
    const foreign = (
      await c.lab.client.sh(
        `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null -subj /CN=${name} -days 30 2>/dev/null`,
      )
    ).stdout;
    expect(foreign).toContain("BEGIN CERTIFICATE");
    await c.aws.putParameter(c.ssm.tlsCert(name), "String", foreign);
    let refused = "";
    for (let t = 0; t < 60 && !refused; t++) {
      await new Promise((r) => setTimeout(r, 1000));
      refused = (await c.hosts[i].sh("grep 'does not chain to the CA' /var/log/redis-stack.log || true")).stdout;
    }
    expect(refused).toContain(c.ssm.tlsCert(name));
    expect(await servedCertSerial(i)).toBe(renewedSerial);
    // Another CA altogether, with a certificate it signed for this node and that certificate's key (what whoever
    // may write the parameters could put there; a self-signed certificate chains to itself): the node accepts
    // only the CA its user-data pins, live and at boot, and keeps serving what it has.
    const rogue = await c.lab.client.sh(
      `d=$(mktemp -d) && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $d/k ` +
        `-subj /CN=${name} -addext subjectAltName=IP:${c.nodes[i].ip} -days 30 -out $d/c 2>/dev/null && cat $d/k $d/c && rm -r $d`,
    );
    const rogueKey = rogue.stdout.slice(0, rogue.stdout.indexOf("-----BEGIN CERTIFICATE-----"));
    const rogueCert = rogue.stdout.slice(rogueKey.length);
    expect(rogueKey).toContain("PRIVATE KEY");
    const ca = (await c.aws.parameters()).find((p) => p.name === c.ssm.tlsCa)?.value ?? "";
    await c.aws.putParameter(c.ssm.tlsKey(name), "SecureString", rogueKey, LAB_KEY_ARN);
    await c.aws.putParameter(c.ssm.tlsCert(name), "String", rogueCert);
    await c.aws.putParameter(c.ssm.tlsCa, "String", rogueCert);
    let pinned = "";
    for (let t = 0; t < 60 && !pinned; t++) {
      await new Promise((r) => setTimeout(r, 1000));
      pinned = (
        await c.hosts[i].sh("grep 'is not the one this node was created with' /var/log/redis-stack.log || true")
      ).stdout;
    }
    expect(pinned).toContain(`the CA in ${c.ssm.tlsCa}`);
    expect(await servedCertSerial(i)).toBe(renewedSerial);
    // The boot's secrets step refuses it before it writes anything.
    const caFile = "/etc/redis-stack/tls/ca.crt";
    const sum = async () => (await c.hosts[i].sh(`sha256sum ${caFile}`)).stdout;
    const caBefore = await sum();
    const boot = await c.hosts[i].sh(". /usr/local/lib/redis-stack/node.sh && refresh_secrets 2>&1");
    expect(boot.code).toBe(1);
    expect(boot.stdout).toMatch(
      /FATAL: the CA in \S+ \(SHA-256 [0-9a-f]{16}\.\.\.\) is not the one this node was created with/,
    );
    expect(await sum()).toBe(caBefore);
    await c.aws.putParameter(c.ssm.tlsCa, "String", ca);
    await c.aws.putParameter(c.ssm.tlsKey(name), "SecureString", renewed.keyPem, LAB_KEY_ARN);
    await c.aws.putParameter(c.ssm.tlsCert(name), "String", renewed.certPem);
    // The next boot's prepare reads the same pair from SSM.
    await c.hosts[i].reboot({ timeoutMs: 120_000 });
    await c.hosts[i].waitBooted(180_000);
    await c.waitConverged(120_000);
    expect(await servedCertSerial(i)).toBe(renewedSerial);
    console.log(
      `TLS renewal: ${name} served serial ${renewedSerial.replace("serial=", "")} live, run_id unchanged, ${result.acked.length} writes meanwhile, 0 failed`,
    );
  }, 600_000);

  test("a replacement instance (new id) runs the user-data again, re-attaches the kept volume and returns with the same cluster identity", async () => {
    const victim = await masterOfSlot(c, c.nodes[2].node.slots.start);
    const i = victim.node.index;
    const idBefore = parseClusterNodes((await c.cli(victim, ["cluster", "nodes"])).stdout).find((l) =>
      l.flags.includes("myself"),
    )?.id;
    const oldInstance = c.hosts[i].instanceId;
    const boot = await c.replace(i, { blankVolume: false });
    expect(boot.status).toBe("done");
    expect(c.hosts[i].instanceId).not.toBe(oldInstance);
    expect((await c.hosts[i].sh("cat /var/lib/cloud/data/instance-id")).stdout.trim()).toBe(c.hosts[i].instanceId);
    expect(boot.output).toMatch(/first boot of \S+ done/);
    expect(boot.output).not.toContain("blank: formatting");
    await c.waitConverged(120_000);
    const idAfter = parseClusterNodes((await c.cli(victim, ["cluster", "nodes"])).stdout).find((l) =>
      l.flags.includes("myself"),
    )?.id;
    expect(idAfter).toBe(idBefore);
  }, 600_000);

  // Backups on the same lab (it ends empty: the operator's FLUSHALL), day 2 on the emptied cluster, and the
  // restore drill last: it lets this lab go to boot the restored stack.
  const taken = backupScenarios(() => c, settings, RESHARDED_BACKUP_SHARDS);
  day2Scenarios(() => c);
  restoreScenarios(taken, () => c.destroy());
});
