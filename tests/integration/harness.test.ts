/**
 * Proves the HostLab harness itself (tests/integration/harness/hostLab.ts):
 * namespaces, private mounts, stand-ins, data volumes, partitions, cleanup.
 */
import * as fs from "fs";
import { randomBytes } from "crypto";
import { spawnSync } from "child_process";
import { describeLab, ExecResult, HostLab, HostSpec, sweepStaleLabs } from "../../lab/hostlab/hostLab";

const SPECS: HostSpec[] = [
  { name: "node-a", ip: "10.77.0.11", az: "us-east-1a", dataVolumeId: "vol-0aaaaaaaaaaaaaaa1" },
  { name: "node-b", ip: "10.77.0.12", az: "us-east-1b", dataVolumeId: "vol-0bbbbbbbbbbbbbbb2" },
  { name: "node-c", ip: "10.77.0.13", az: "us-east-1c", dataVolumeId: "vol-0ccccccccccccccc3" },
];
const CLIENT_IP = "10.77.0.100";
const SECRET = "p@ss w0rd'\"$x";

function ok(r: ExecResult): string {
  if (r.code !== 0) throw new Error(`exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r.stdout;
}

function sh(cmd: string): string {
  return spawnSync("bash", ["-c", cmd], { encoding: "utf8" }).stdout ?? "";
}

const UNIT = `[Unit]
Description=harness test redis
[Service]
User=redis
Group=redis
ExecStart=/usr/bin/redis-server --port 6390 --protected-mode no --dir /tmp --save ""
[Install]
WantedBy=multi-user.target
`;

describeLab("HostLab harness", () => {
  let lab: HostLab;
  const a = () => lab.host("node-a");
  const b = () => lab.host("node-b");

  beforeAll(async () => {
    lab = await HostLab.create(SPECS, {
      cidrPrefix: 24,
      clientIp: CLIENT_IP,
      ssmParameters: { "/redis/test/password": SECRET },
    });
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  test("hostnames, addresses and a private pid namespace", async () => {
    for (const s of SPECS) {
      const out = ok(
        await lab
          .host(s.name)
          .sh("hostname; ip -4 -o addr show dev eth0; ps -e -o comm= | grep -c redis-server || true"),
      );
      const [hostname, addr, redisCount] = out.trim().split("\n");
      expect(hostname).toBe(s.name);
      expect(addr).toContain(`${s.ip}/24`);
      expect(redisCount).toBe("0");
    }
    expect(ok(await lab.client.exec(["hostname"])).trim()).toBe("client");
    expect(lab.hosts.map((h) => h.name)).toEqual(SPECS.map((s) => s.name));
    expect(() => lab.host("nope")).toThrow(/no host named nope/);
  });

  test("hosts reach each other and the client reaches every host", async () => {
    // A plain redis listener in every host (not through systemctl).
    await Promise.all(
      lab.hosts.map(async (h) =>
        ok(await h.sh("redis-server --port 7001 --protected-mode no --daemonize yes --save '' --dir /tmp >/dev/null")),
      ),
    );
    for (const from of [...lab.hosts, lab.client]) {
      const script = lab.hosts.map((to) => `timeout 5 redis-cli -h ${to.ip} -p 7001 ping`).join("; ");
      expect(
        ok(await from.sh(script))
          .trim()
          .split("\n"),
      ).toEqual(lab.hosts.map(() => "PONG"));
    }
    // The test machine itself has no route into the lab.
    expect(sh(`ip route get ${SPECS[0].ip} 2>&1`)).not.toContain(lab.bridge);
  });

  test("a unit started through the systemctl stand-in runs as User=redis and answers the client", async () => {
    ok(await a().exec(["bash", "-c", "cat > /etc/systemd/system/harness-redis.service"], { input: UNIT }));
    const started = ok(
      await a().sh(
        "systemctl daemon-reload && systemctl enable --now harness-redis && systemctl is-active harness-redis && systemctl is-enabled harness-redis",
      ),
    );
    expect(started.trim().split("\n")).toEqual(["active", "enabled"]);
    const ping = await lab.client.sh(
      `for i in $(seq 50); do r=$(redis-cli -h ${SPECS[0].ip} -p 6390 ping 2>/dev/null) && [ "$r" = PONG ] && echo "$r" && exit 0; sleep 0.1; done; exit 1`,
    );
    expect(ok(ping).trim()).toBe("PONG");
    const user = ok(await a().sh('ps -o user= -p "$(systemctl show -p MainPID --value harness-redis)"'));
    expect(user.trim()).toBe("redis");
    expect(ok(await a().sh("test -s /var/log/fake-systemd-harness-redis.log && echo logged")).trim()).toBe("logged");
    // systemd-like errors and leniency
    const missing = await a().sh("systemctl start no-such-unit");
    expect(missing.code).toBe(5);
    expect(missing.stderr).toContain("Unit no-such-unit.service not found.");
    const lenient = await a().sh("systemctl disable --now no-such-unit && systemctl stop no-such-unit");
    expect(lenient.code).toBe(0);
    expect(lenient.stderr).toMatch(/[Ww]arning/);
  });

  test("private /etc (and /etc/redis) per host: invisible to other hosts and to the real machine", async () => {
    const marker = `/etc/redis/harness-${lab.id}.conf`;
    ok(
      await a().sh(
        `echo "port 6390" > ${marker} && echo "# harness ${lab.id}" >> /etc/fstab && sed -i 's/harness/HARNESS/' /etc/fstab`,
      ),
    );
    expect(ok(await a().sh(`cat ${marker}`)).trim()).toBe("port 6390");
    expect((await b().sh(`test -e ${marker}`)).code).toBe(1);
    expect(fs.existsSync(marker)).toBe(false);
    expect(fs.readFileSync("/etc/fstab", "utf8")).not.toContain(lab.id);
    expect(ok(await a().sh("cat /etc/fstab"))).toContain(`# HARNESS ${lab.id}`);
  });

  test("the EBS by-id symlink points at the host's own blank block device", async () => {
    for (const h of lab.hosts) {
      expect(h.byIdPath).toBe(
        `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${SPECS.find((s) => s.name === h.name)?.dataVolumeId.replace("-", "")}`,
      );
      const out = ok(
        await h.sh(
          `test -L ${h.byIdPath} && test -b ${h.byIdPath} && readlink -f ${h.byIdPath}; blkid ${h.byIdPath}; echo "blkid=$?"; ls /dev | grep -c '^loop'`,
        ),
      );
      const [target, blkid, loops] = out.trim().split("\n");
      expect(target).toBe(h.dataDevice);
      expect(blkid).toBe("blkid=2");
      expect(loops).toBe("1");
      // like on a fresh instance: an empty, redis-owned directory that is not a mountpoint
      const dir = ok(
        await h.sh(
          'mountpoint -q /var/lib/redis && m=mountpoint || m=plain-dir; echo "$m $(stat -c %U /var/lib/redis) $(ls -A /var/lib/redis | wc -l)"',
        ),
      );
      expect(dir.trim()).toBe("plain-dir redis 0");
    }
  });

  test("aws stand-in serves SSM parameters; unknown names fail with 254", async () => {
    const text = await a().exec([
      "aws",
      "ssm",
      "get-parameter",
      "--name",
      "/redis/test/password",
      "--with-decryption",
      "--query",
      "Parameter.Value",
      "--output",
      "text",
      "--region",
      "us-east-1",
    ]);
    expect(text).toEqual({ code: 0, stdout: `${SECRET}\n`, stderr: "" });
    const json = await a().exec([
      "aws",
      "--region=us-east-1",
      "ssm",
      "get-parameter",
      "--with-decryption",
      "--name=/redis/test/password",
    ]);
    expect(JSON.parse(ok(json))).toMatchObject({
      Parameter: { Name: "/redis/test/password", Type: "SecureString", Value: SECRET },
    });
    const encrypted = ok(
      await a().exec([
        "aws",
        "ssm",
        "get-parameter",
        "--name",
        "/redis/test/password",
        "--query",
        "Parameter.Value",
        "--output",
        "text",
      ]),
    );
    expect(encrypted.trim()).not.toBe(SECRET);
    const unknown = await a().exec(["aws", "ssm", "get-parameter", "--name", "/nope", "--with-decryption"]);
    expect(unknown.code).toBe(254);
    expect(unknown.stderr).toContain("An error occurred (ParameterNotFound) when calling the GetParameter operation: ");
    expect((await a().exec(["aws", "ec2", "describe-instances"])).code).toBe(2);
    // parameters can be rotated / deleted while the lab runs
    lab.setSsmParameter("/redis/test/password", "rotated");
    expect(
      ok(
        await b().sh(
          "aws ssm get-parameter --name /redis/test/password --with-decryption --query Parameter.Value --output text",
        ),
      ).trim(),
    ).toBe("rotated");
    lab.setSsmParameter("/redis/test/password", undefined);
    expect((await b().sh("aws ssm get-parameter --name /redis/test/password --with-decryption")).code).toBe(254);
    lab.setSsmParameter("/redis/test/password", SECRET);
    // root-only, like the brief asks (see the report: on EC2 any user could reach IMDS credentials)
    expect(
      (await a().sh("runuser -u redis -- aws ssm get-parameter --name /redis/test/password --with-decryption")).code,
    ).toBe(253);
    expect(ok(await a().sh("apt-get install -y redis-server && cat /var/log/fake-apt.log"))).toContain(
      "install -y redis-server",
    );
  });

  test("IMDS and syslog are available inside hosts", async () => {
    const out = ok(
      await b().sh(
        'T=$(curl -s -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" http://169.254.169.254/latest/api/token) && ' +
          'curl -sf -H "X-aws-ec2-metadata-token: $T" http://169.254.169.254/latest/meta-data/placement/availability-zone && echo && ' +
          "curl -sf http://169.254.169.254/latest/meta-data/local-ipv4 && echo && logger -t harness hello && sleep 0.2 && grep -c 'harness: hello' /var/log/syslog",
      ),
    );
    expect(out.trim().split("\n")).toEqual(["us-east-1b", SPECS[1].ip, "1"]);
  });

  test("runUserData runs a script like cloud-init (shebang flags honoured, root, cwd /)", async () => {
    const r = await a().runUserData(
      '#!/bin/bash -e\necho "$(id -un) $(pwd) $0 HOME=${HOME-unset} $(command -v systemctl)"\nfalse\necho not-reached\n',
    );
    expect(r.code).toBe(1);
    expect(r.stdout.trim()).toBe(
      "root / /var/lib/cloud/instance/scripts/part-001 HOME=unset /run/host-lab/bin/systemctl",
    );
    expect(ok(await a().sh("cat /var/log/cloud-init-output.log"))).toContain("root / ");
  });

  test("networkDown partitions a host from the client; networkUp heals it", async () => {
    const probe = `timeout 2 redis-cli -h ${SPECS[0].ip} -p 6390 ping`;
    await a().networkDown();
    try {
      const down = await lab.client.sh(probe);
      expect(down.stdout.trim()).not.toBe("PONG");
      // the other hosts still work
      expect(ok(await lab.client.sh(`timeout 2 redis-cli -h ${SPECS[1].ip} -p 7001 ping`)).trim()).toBe("PONG");
    } finally {
      await a().networkUp();
    }
    const up = await lab.client.sh(
      `for i in $(seq 30); do r=$(${probe} 2>/dev/null) && [ "$r" = PONG ] && echo "$r" && exit 0; sleep 0.1; done; exit 1`,
    );
    expect(ok(up).trim()).toBe("PONG");
  });

  test("killAll stops everything started through systemctl (power loss)", async () => {
    await a().killAll();
    const r = await a().sh("systemctl is-active harness-redis");
    expect(r.code).toBe(3);
    expect(r.stdout.trim()).toBe("failed");
    expect((await lab.client.sh(`timeout 2 redis-cli -h ${SPECS[0].ip} -p 6390 ping`)).stdout.trim()).not.toBe("PONG");
    // a restart after the power loss works
    ok(await a().sh("systemctl start harness-redis"));
    expect(ok(await a().sh("systemctl is-active harness-redis")).trim()).toBe("active");
    await a().killAll("TERM");
    expect((await a().sh("systemctl is-active harness-redis")).code).toBe(3);
  });

  test("Restart=always: a crashed service is started again after RestartSec; a stop or a power loss is not a crash", async () => {
    const h = b();
    const unit = "[Service]\nExecStart=/bin/sleep 1000\nRestart=always\nRestartSec=1\n";
    ok(
      await h.sh(
        `printf '${unit}' >/etc/systemd/system/crashy.service && systemctl daemon-reload && systemctl start crashy`,
      ),
    );
    const mainPid = async () => ok(await h.sh("systemctl show -p MainPID --value crashy")).trim();
    const first = await mainPid();
    expect(first).toMatch(/^[1-9][0-9]*$/);
    ok(await h.sh(`kill -KILL ${first}`));
    // Not before RestartSec; then a new main process.
    const restarted = ok(
      await h.sh(
        `start=$(date +%s%N); for i in $(seq 100); do p=$(systemctl show -p MainPID --value crashy); if systemctl is-active -q crashy && [ "$p" != ${first} ]; then echo "$p $(( ($(date +%s%N) - start) / 1000000 ))"; exit 0; fi; sleep 0.1; done; exit 1`,
      ),
    )
      .trim()
      .split(" ");
    expect(restarted[0]).not.toBe(first);
    expect(Number(restarted[1])).toBeGreaterThanOrEqual(900);
    expect(ok(await h.sh("cat /var/log/fake-systemd-crashy.log"))).toContain("Restart=always: scheduled restart in 1s");
    // A stop request is obeyed, and so is a power loss: nothing comes back.
    ok(await h.sh("systemctl stop crashy"));
    await new Promise((r) => setTimeout(r, 2500));
    expect((await h.sh("systemctl is-active crashy")).stdout.trim()).toBe("inactive");
    ok(await h.sh("systemctl start crashy"));
    expect((await h.sh("pgrep -fx '/bin/sleep 1000'")).stdout.trim()).toMatch(/^[0-9]+$/);
    await h.killAll("KILL");
    await new Promise((r) => setTimeout(r, 2500));
    expect((await h.sh("systemctl is-active crashy")).stdout.trim()).toBe("failed");
    expect((await h.sh("pgrep -fx '/bin/sleep 1000'")).stdout.trim()).toBe("");
  });

  test("replaceDataVolume gives a new instance with a blank volume under the same id", async () => {
    const h = a();
    ok(
      await h.sh(
        `mkfs.ext4 -q -L redis ${h.byIdPath} && mount ${h.byIdPath} /var/lib/redis && echo data > /var/lib/redis/f && echo "${h.byIdPath} /var/lib/redis ext4 defaults 0 2" >> /etc/fstab`,
      ),
    );
    expect(ok(await h.sh(`blkid -o value -s TYPE ${h.byIdPath}`)).trim()).toBe("ext4");
    const oldInstance = h.instanceId;
    await h.replaceDataVolume();
    expect(h.instanceId).not.toBe(oldInstance);
    const out = await h.sh(
      `blkid ${h.byIdPath}; echo "blkid=$?"; mountpoint -q /var/lib/redis && echo mounted || echo not-mounted; ls -A /var/lib/redis | wc -l; ls /etc/systemd/system/harness-redis.service 2>/dev/null | wc -l; grep -c "${lab.id}" /etc/fstab; ls /var/log/fake-systemd-* 2>/dev/null | wc -l; hostname; test -b ${h.byIdPath} && echo block`,
    );
    expect(out.stdout.trim().split("\n")).toEqual(["blkid=2", "not-mounted", "0", "0", "0", "0", "node-a", "block"]);
    expect(ok(await h.sh("curl -s http://169.254.169.254/latest/meta-data/instance-id")).trim()).toBe(h.instanceId);
    expect(ok(await lab.client.sh(`timeout 5 redis-cli -h ${SPECS[1].ip} -p 7001 ping`)).trim()).toBe("PONG");
    // the replaced host is still on the network
    ok(await h.sh("redis-server --port 7001 --protected-mode no --daemonize yes --save '' --dir /tmp >/dev/null"));
    expect(ok(await lab.client.sh(`timeout 5 redis-cli -h ${SPECS[0].ip} -p 7001 ping`)).trim()).toBe("PONG");
  });

  test("sweepStaleLabs removes leftovers of a crashed run but not live labs", async () => {
    // a random id nobody uses (labs of other processes may exist concurrently)
    const inUse = sh("ip netns list; ip -o link show; ls /tmp");
    let id = "";
    do id = randomBytes(2).toString("hex");
    while (inUse.includes(id));
    const dir = `/tmp/rlab-${id}-crashed`;
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(`${dir}/owner.json`, JSON.stringify({ pid: 999999999, start: "1" }));
    // (a concurrent process may sweep these before we do: that is fine, only the outcome matters)
    const made = spawnSync("bash", [
      "-c",
      `ip netns add rlab-${id}-x && ip link add rlab${id} type bridge && truncate -s 1M ${dir}/v.img && losetup -f ${dir}/v.img`,
    ]);
    expect(made.status).toBe(0);
    const swept = await sweepStaleLabs();
    expect(swept).not.toContain(lab.id);
    expect(sh("ip netns list")).not.toContain(`rlab-${id}-`);
    expect(sh("ip -o link show")).not.toContain(`rlab${id}`);
    expect(sh("losetup -a")).not.toContain(dir);
    expect(fs.existsSync(dir)).toBe(false);
    expect(ok(await lab.client.sh(`timeout 5 redis-cli -h ${SPECS[2].ip} -p 7001 ping`)).trim()).toBe("PONG");
  });

  test("destroy() removes every namespace, link, loop device, mount and dir of the lab", async () => {
    const { id, dir, bridge } = lab;
    const pids = SPECS.concat([{ name: "client", ip: CLIENT_IP, az: "", dataVolumeId: "" }])
      .flatMap((s) => sh(`ip netns pids rlab-${id}-${s.name}`).split(/\s+/))
      .filter((p) => /^\d+$/.test(p));
    expect(pids.length).toBeGreaterThanOrEqual(SPECS.length * 3);
    await lab.destroy();
    await lab.destroy(); // idempotent
    expect(sh("ip netns list")).not.toContain(`rlab-${id}-`);
    const links = sh("ip -o link show");
    expect(links).not.toContain(bridge);
    expect(links).not.toMatch(new RegExp(`rl${id}v\\d`));
    expect(sh("losetup -a")).not.toContain(dir);
    expect(fs.readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(dir);
    expect(sh("findmnt -rn -o SOURCE")).not.toContain("hostlab-");
    expect(fs.existsSync(dir)).toBe(false);
    const alive = pids.filter((p) => {
      const stat = sh(`cat /proc/${p}/stat 2>/dev/null`);
      return stat !== "" && !/^\d+ \(.*\) [ZX] /.test(stat);
    });
    expect(alive).toEqual([]);
  });
});
