/**
 * The HostLab's hosts behave like EC2 instances: real systemd, cloud-init running the gzip'd user-data
 * once per instance (NoCloud), real apt against the local mirror, an EBS-like volume under its Nitro
 * by-id name, and EC2's lifecycle (reboot, power loss, replacement). One lab of 2 hosts + the client.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describeLab, Host, HostLab, LabNode } from "../../lab/hosts/hostLab";
import { ensureRootfs, Rootfs } from "../../lab/hosts/rootfs";

const SUBNET = "10.231.7";
/** A second lab's bridge (the persistent one): another subnet, so no address is shared even by mistake. */
const PERSISTENT_SUBNET = "10.231.8";
const USER_DATA = `#!/bin/bash
set -euo pipefail
iid=$(cat /var/lib/cloud/data/instance-id)
echo "$(date -u +%FT%T.%NZ) $iid" >>/var/lib/lab-userdata.log
cat >/etc/systemd/system/lab-tiny.service <<'EOF'
[Unit]
Description=HostLab test service
[Service]
ExecStartPre=/bin/sh -c 'echo "started $(date +%%s)" >>/var/lib/lab-tiny.log'
ExecStart=/usr/bin/python3 -m http.server 8080 --directory /var/lib
[Install]
WantedBy=multi-user.target
EOF
systemctl daemon-reload
systemctl enable --now lab-tiny.service
echo "user-data done on $iid"
`;

/** A static file server for the mirror, in the endpoint namespace (the real endpoint comes later). */
const MIRROR_SERVER_JS = String.raw`
const http = require("http"), fs = require("fs"), path = require("path");
const [root, host] = process.argv.slice(1);
http.createServer((req, res) => {
  const p = path.normalize(decodeURIComponent((req.url || "/").split("?")[0]));
  const file = path.join(root, p);
  if (!file.startsWith(root + "/")) { res.writeHead(403); return res.end(); }
  fs.stat(file, (err, st) => {
    if (err || !st.isFile()) { res.writeHead(404); return res.end(); }
    res.writeHead(200, { "Content-Length": st.size });
    if (req.method === "HEAD") return res.end();
    fs.createReadStream(file).pipe(res);
  });
}).listen(80, host, () => console.log("listening"));
`;

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

describeLab("HostLab: real Debian 12 hosts (systemd, cloud-init, apt)", () => {
  let lab: HostLab;
  let rootfs: Rootfs;
  let h1: Host;
  let h2: Host;
  let mirrorPid = 0;
  const timings: string[] = [];

  const ok = async (h: LabNode, script: string, timeoutMs = 120_000): Promise<string> => {
    const r = await h.sh(script, { timeoutMs });
    if (r.code !== 0) throw new Error(`${h.name}: ${script}\nexit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };

  const userDataRuns = async (h: Host): Promise<string[]> =>
    (await ok(h, "cat /var/lib/lab-userdata.log")).split("\n").filter((l) => l.trim() !== "");

  /** cloud-init finished the user-data successfully; returns the seconds it took from `since`. */
  const cloudInitDone = async (h: Host, since: number): Promise<number> => {
    const ci = await h.waitCloudInit(300_000);
    if (ci.status !== "done")
      throw new Error(`${h.name}: cloud-init ${ci.status} (${ci.code})\n${ci.detail}\n${ci.output}`);
    expect(ci.code).toBe(0);
    return (Date.now() - since) / 1000;
  };

  const expectVolumeAttached = async (h: Host): Promise<void> => {
    expect((await ok(h, `readlink -f ${h.byIdPath}`)).trim()).toBe(h.volumeDevice);
  };

  beforeAll(async () => {
    let t = Date.now();
    rootfs = await ensureRootfs({ log });
    timings.push(`rootfs ${rootfs.built ? "cold build" : "warm (cached)"}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    t = Date.now();
    await ensureRootfs({ log });
    timings.push(`rootfs warm: ${((Date.now() - t) / 1000).toFixed(2)} s`);

    t = Date.now();
    lab = await HostLab.create(
      [
        { name: "h1", ip: `${SUBNET}.11`, volumeId: "vol-0aaa111", userData: USER_DATA },
        { name: "h2", ip: `${SUBNET}.12`, volumeId: "vol-0bbb222", userData: USER_DATA },
      ],
      { cidrPrefix: 24, clientIp: `${SUBNET}.100`, endpointIp: `${SUBNET}.2`, rootfs, volumeMiB: 64 },
    );
    h1 = lab.host("h1");
    h2 = lab.host("h2");
    await Promise.all(
      [h1, h2].map(async (h) => {
        const s = await cloudInitDone(h, t);
        timings.push(`${h.name}: create + first boot to user-data done: ${s.toFixed(1)} s`);
      }),
    );

    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        lab.endpoint.netns,
        process.execPath,
        "-e",
        MIRROR_SERVER_JS,
        rootfs.mirrorRoot,
        lab.endpointIp,
      ],
      { stdio: ["ignore", "pipe", "inherit"], detached: true },
    );
    mirrorPid = child.pid ?? 0;
    await new Promise<void>((resolve, reject) => {
      child.on("error", reject);
      child.stdout?.once("data", () => resolve());
    });
  }, 30 * 60_000);

  afterAll(async () => {
    if (mirrorPid) {
      try {
        process.kill(-mirrorPid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    await lab?.destroy();
    log(`HostLab timings:\n  ${timings.join("\n  ")}`);
    if (lab) expect(fs.existsSync(lab.dir)).toBe(false);
  });

  test("first boot: cloud-init ran the user-data exactly once, under real systemd", async () => {
    for (const h of [h1, h2]) {
      expect(h.instanceId).toMatch(/^i-0[0-9a-f]{16}$/);
      const runs = await userDataRuns(h);
      expect(runs).toHaveLength(1);
      expect(runs[0]).toContain(h.instanceId);
      expect((await ok(h, "cloud-init query instance-id")).trim()).toBe(h.instanceId);
      expect(await ok(h, "cat /var/log/cloud-init-output.log")).toContain(`user-data done on ${h.instanceId}`);
      expect((await ok(h, "systemctl is-active lab-tiny.service")).trim()).toBe("active");
      expect((await ok(h, "readlink /proc/1/exe")).trim()).toMatch(/systemd$/);
      expect(["running", "degraded"]).toContain(await h.waitBooted());
      expect((await ok(h, "hostname")).trim()).toBe(h.name);
      await expectVolumeAttached(h);
      // The lab CA is in the system trust store (awscli uses it for the lab's AWS endpoint).
      const caBody = fs.readFileSync(rootfs.caCertFile, "utf8").split("\n").slice(1, 3).join("\n");
      expect(await ok(h, "cat /etc/ssl/certs/ca-certificates.crt")).toContain(caBody);
      expect(fs.readFileSync(h.consoleLog, "utf8")).toContain(`user-data done on ${h.instanceId}`);
    }
  });

  test("hosts reach each other and the client over the bridge", async () => {
    expect(await ok(h1, `curl -fsS http://${h2.ip}:8080/lab-userdata.log`)).toContain(h2.instanceId);
    expect(await ok(h2, `curl -fsS http://${h1.ip}:8080/lab-userdata.log`)).toContain(h1.instanceId);
    await ok(h1, `ping -c1 -W5 ${lab.client.ip}`);
    const r = await lab.client.exec(["curl", "-fsS", `http://${h1.ip}:8080/lab-userdata.log`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(h1.instanceId);
  });

  test("the EBS volume: blkid, mkfs.ext4, mount, findmnt through the Nitro by-id link", async () => {
    for (const h of [h1, h2]) {
      expect((await h.sh(`blkid ${h.byIdPath}`)).code).toBe(2); // blank
      await ok(
        h,
        `mkfs.ext4 -q ${h.byIdPath} && mkdir -p /data && mount ${h.byIdPath} /data && echo ${h.name} >/data/marker`,
      );
      expect(await ok(h, `blkid -o value -s TYPE ${h.byIdPath}`)).toContain("ext4");
      expect((await ok(h, "findmnt -n -o SOURCE /data")).trim()).toBe(h.volumeDevice);
    }
  });

  test("apt installs redis-server from the local mirror (signed InRelease)", async () => {
    const t = Date.now();
    const out = await ok(
      h1,
      "apt-get update 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server 2>&1",
      300_000,
    );
    timings.push(`h1: apt-get update + install redis-server: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    expect(out).toContain("http://deb.debian.org/debian bookworm InRelease");
    expect(out).not.toMatch(/^W: /m);
    expect(await ok(h1, "redis-server --version")).toContain("v=7.0.15");
    expect((await ok(h1, "systemctl is-active redis-server")).trim()).toBe("active");
    expect((await ok(h1, "redis-cli ping")).trim()).toBe("PONG");
  });

  test("reboot: same instance, user-data not re-run, enabled services and the volume come back", async () => {
    const iid = h1.instanceId;
    const machineId = await ok(h1, "cat /etc/machine-id");
    const boots = h1.bootCount();
    const t = Date.now();
    await h1.reboot();
    const booted = await h1.waitBooted();
    await cloudInitDone(h1, t);
    timings.push(`h1: reboot to booted (${booted}) + cloud-init done: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    expect(h1.bootCount()).toBe(boots + 1);
    expect(h1.instanceId).toBe(iid);
    expect((await ok(h1, "cloud-init query instance-id")).trim()).toBe(iid);
    expect(await userDataRuns(h1)).toHaveLength(1);
    expect(await ok(h1, "cat /etc/machine-id")).toBe(machineId);
    expect((await ok(h1, "systemctl is-active lab-tiny.service redis-server")).trim().split("\n")).toEqual([
      "active",
      "active",
    ]);
    expect((await ok(h1, "grep -c started /var/lib/lab-tiny.log")).trim()).toBe("2");
    await expectVolumeAttached(h1);
    expect(await ok(h1, `mount ${h1.byIdPath} /data && cat /data/marker`)).toBe("h1\n");

    // A reboot issued from inside the host (by a script), not through the lab.
    const b2 = h2.bootCount();
    await h2.sh("systemd-run --on-active=1 --timer-property=AccuracySec=10ms systemctl reboot");
    await h2.waitForBoot(b2);
    await cloudInitDone(h2, Date.now());
    expect(await userDataRuns(h2)).toHaveLength(1);
    await expectVolumeAttached(h2);
  });

  test("apt-get update with the mirror unreachable: W: Failed to fetch, exit 0 (Debian 12)", async () => {
    process.kill(-mirrorPid, "SIGKILL");
    mirrorPid = 0;
    const r = await h2.sh("apt-get update", { timeoutMs: 120_000 });
    expect(r.stdout + r.stderr).toContain("W: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease");
    expect(r.code).toBe(0);
  });

  test("powerLoss loses what was not flushed to the volume: a synced file survives, an unsynced one is gone", async () => {
    await ok(
      h2,
      `mkdir -p /data && mount ${h2.byIdPath} /data && echo flushed > /data/synced && sync -f /data/synced && ` +
        "head -c 65536 /dev/urandom > /data/unsynced && echo written",
    );
    await h2.powerLoss();
    await h2.start();
    await cloudInitDone(h2, Date.now());
    expect(await ok(h2, `mount ${h2.byIdPath} /data && cat /data/synced && ls /data`)).toBe(
      "flushed\nlost+found\nmarker\nsynced\n",
    );
    await ok(h2, "umount /data");
  });

  test("instanceLoss is silent: peers' connections time out (no RST, no refusal) until the instance boots again", async () => {
    const iid = h1.instanceId;
    // An established connection from h2 to h1 gets neither a FIN nor an RST when h1 dies.
    const held = h2.sh(
      `exec 3<>/dev/tcp/${h1.ip}/8080; printf 'GET /lab-userdata.log HTTP/1.0\\r\\n' >&3; sleep 1; timeout 4 cat <&3 >/dev/null; echo "read ended: $?"`,
      { timeoutMs: 20_000 },
    );
    await new Promise((r) => setTimeout(r, 500));
    await h1.instanceLoss();
    expect((await held).stdout.trim()).toBe("read ended: 124");
    // A new connection is not refused: it times out (curl 28), as to a dead EC2 instance.
    expect((await h2.sh(`curl -sS --max-time 3 -o /dev/null http://${h1.ip}:8080/`)).code).toBe(28);
    const t = Date.now();
    await h1.start();
    await cloudInitDone(h1, t);
    expect(h1.instanceId).toBe(iid);
    await ok(h2, `curl -fsS --retry 5 --retry-all-errors --max-time 3 http://${h1.ip}:8080/lab-userdata.log`);
  });

  test("powerLoss kills everything; start() boots the same instance without re-running the user-data", async () => {
    const iid = h2.instanceId;
    await h2.powerLoss();
    expect(h2.isRunning()).toBe(false);
    const left = (await lab.client.exec(["ip", "netns", "pids", h2.netns])).stdout.trim();
    expect(left).toBe("");
    expect((await h2.sh("true")).code).toBe(125);
    const t = Date.now();
    await h2.start();
    await cloudInitDone(h2, t);
    timings.push(`h2: start after power loss to cloud-init done: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    expect(h2.instanceId).toBe(iid);
    expect(await userDataRuns(h2)).toHaveLength(1);
    expect((await ok(h2, "systemctl is-active lab-tiny.service")).trim()).toBe("active");
    await expectVolumeAttached(h2);
    expect(await ok(h2, `mount ${h2.byIdPath} /data && cat /data/marker`)).toBe("h2\n");
  });

  test("replace: a new instance on a fresh root runs the user-data again; blank or re-attached volume", async () => {
    const old2 = h2.instanceId;
    await ok(h2, "touch /root/old-root");
    let t = Date.now();
    await h2.replace({ blankVolume: true });
    await cloudInitDone(h2, t);
    timings.push(`h2: replace (blank volume) to user-data done: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    expect(h2.instanceId).not.toBe(old2);
    const runs = await userDataRuns(h2);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toContain(h2.instanceId);
    expect((await h2.sh("test -e /root/old-root")).code).toBe(1);
    await expectVolumeAttached(h2);
    expect((await h2.sh(`blkid ${h2.byIdPath}`)).code).toBe(2);

    const old1 = h1.instanceId;
    t = Date.now();
    await h1.replace();
    await cloudInitDone(h1, t);
    expect(h1.instanceId).not.toBe(old1);
    expect(await userDataRuns(h1)).toHaveLength(1);
    expect((await h1.sh("command -v redis-server")).code).toBe(1);
    await expectVolumeAttached(h1);
    expect(await ok(h1, `mkdir -p /data && mount ${h1.byIdPath} /data && cat /data/marker`)).toBe("h1\n");
  });

  test("networkDown partitions a host silently (packets dropped, no refusal); networkUp heals it", async () => {
    await h1.networkDown();
    expect((await h2.sh(`curl -sS --max-time 3 -o /dev/null http://${h1.ip}:8080/`)).code).toBe(28);
    await h1.networkUp();
    await ok(h2, `curl -fsS --retry 5 --retry-all-errors --max-time 3 http://${h1.ip}:8080/lab-userdata.log`);
  });

  test("partition drops packets between chosen hosts only, both ways", async () => {
    await h1.partition([h2.ip]);
    expect((await h2.sh(`curl -sS --max-time 3 -o /dev/null http://${h1.ip}:8080/`)).code).toBe(28);
    expect((await h1.sh(`curl -sS --max-time 3 -o /dev/null http://${h2.ip}:8080/`)).code).toBe(28);
    await ok(lab.client, `curl -fsS --max-time 3 -o /dev/null http://${h1.ip}:8080/lab-userdata.log`);
    await h1.unpartition([h2.ip]);
    await ok(h2, `curl -fsS --retry 5 --retry-all-errors --max-time 3 http://${h1.ip}:8080/lab-userdata.log`);
  });

  test("a persistent lab is taken over by a later run (HostLab.open): same hosts, volumes, growth by a new host", async () => {
    const first = await HostLab.create(
      [{ name: "p1", ip: `${PERSISTENT_SUBNET}.11`, volumeId: "vol-0ccc333", userData: USER_DATA }],
      {
        cidrPrefix: 24,
        clientIp: `${PERSISTENT_SUBNET}.100`,
        endpointIp: `${PERSISTENT_SUBNET}.2`,
        rootfs,
        volumeMiB: 64,
        persistent: true,
      },
    );
    try {
      const p1 = first.host("p1");
      await cloudInitDone(p1, Date.now());
      await ok(
        p1,
        `mkfs.ext4 -q ${p1.byIdPath} && mkdir -p /data && mount ${p1.byIdPath} /data && echo p1 >/data/marker`,
      );

      // What the next run knows comes from the lab's dir alone.
      const again = HostLab.open(first.dir);
      const q1 = again.host("p1");
      expect([q1.instanceId, q1.volumeDevice, q1.ip]).toEqual([p1.instanceId, p1.volumeDevice, p1.ip]);
      expect(q1.isRunning()).toBe(true);
      expect(await ok(q1, "cat /data/marker")).toBe("p1\n");
      expect(q1.volumeMiB()).toBe(64);

      const q2 = await again.addHost({
        name: "p2",
        ip: `${PERSISTENT_SUBNET}.12`,
        volumeId: "vol-0ddd444",
        userData: USER_DATA,
      });
      const t = Date.now();
      await q2.start();
      await cloudInitDone(q2, t);
      await ok(q2, `curl -fsS --retry 5 --retry-all-errors --max-time 3 http://${q1.ip}:8080/lab-userdata.log`);

      // A third run sees the added host, and no longer the removed one.
      expect(HostLab.open(first.dir).hosts.map((h) => h.name)).toEqual(["p1", "p2"]);
      again.removeHost("p1");
      const third = HostLab.open(first.dir);
      expect(third.hosts.map((h) => h.name)).toEqual(["p2"]);
      expect((await third.host("p2").sh("true")).code).toBe(0);
      await third.destroy();
      expect(fs.existsSync(first.dir)).toBe(false);
      expect(() => HostLab.open(lab.dir)).toThrow(/not a persistent lab/);
    } finally {
      await first.destroy();
    }
  });

  test("console logs are kept per host", () => {
    expect(fs.existsSync(h1.consoleLog)).toBe(true);
    expect(path.dirname(h1.consoleLog)).toBe(h1.dir);
  });
});
