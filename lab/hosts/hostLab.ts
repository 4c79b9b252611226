/**
 * HostLab: real Debian 12 hosts on one Linux machine, each one simulating one EC2 instance, so that the
 * stack's EC2 user-data runs exactly as on EC2: gzip'd, handed to cloud-init by a datasource, run once
 * per instance by cloud-init under real systemd, installing packages with real apt.
 *
 * Every host is:
 *  - a network namespace `rlab-<id>-<name>` whose eth0 is a veth into the lab's bridge `rlab<id>` (no
 *    address on the bridge unless LabOptions.gatewayIp: the lab is otherwise unreachable from this
 *    machine; use `lab.client`). 169.254.169.254 is routed to the AWS endpoint namespace
 *    `rlab-<id>-aws` (address LabOptions.endpointIp plus 169.254.169.254/32), where the lab's AWS
 *    endpoint (IMDS, SSM, CloudWatch, STS, S3 and the Debian mirror, run by its caller) listens.
 *  - a root filesystem: an overlay whose lower dir is the cached rootfs (lab/hosts/rootfs.ts, the "AMI")
 *    and whose upper dir is the host's own (its "root EBS volume"), with /etc/hostname, /etc/hosts (the
 *    mirror and AWS endpoint names -> the endpoint) and the NoCloud seed (meta-data with the instance id,
 *    user-data = the gzip'd script, as EC2 hands it over) written into the upper dir before first boot.
 *  - systemd as PID 1 (systemd-nspawn --boot in the host's network namespace), run by a detached
 *    supervisor (supervise.sh) that boots it again when it reboots (nspawn exits 133), so reboots issued
 *    from inside the host work, and so a persistent lab outlives its creator.
 *  - a data "EBS volume": a sparse file on a loop device, bound into the container and linked as
 *    /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id> after each boot starts (udev does not run
 *    in a container: the supervisor does what the Nitro udev rules would do).
 *
 * Lifecycle, with EC2 + cloud-init semantics: start() (first boot of an instance: cloud-init runs the
 * user-data), reboot() (same instance id: cloud-init does not run it again), stop() (ACPI shutdown: units
 * stop in order), instanceLoss() or powerLoss() + start() (the instance dies silently; a power loss also
 * loses the volume's unflushed writes), replace() (a new instance: new id, fresh root, optionally a new
 * blank volume), networkDown()/Up() and partition() (packets dropped, both ways).
 *
 * Lab ids are "h" + 3 hex digits, so the old lab (lab/hostlab, ids of 4 hex digits) never sweeps ours.
 * Global kernel settings (sysctl vm.*, transparent hugepages) are NOT namespaced: a host that writes them
 * changes this machine.
 */
import { spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as vm from "vm";
import * as zlib from "zlib";
import { ensureRootfs, Rootfs } from "./rootfs";

// ------------------------------------------------------------------ public API

export interface HostSpec {
  /** Host name (hostname inside the host, meta-data local-hostname): [A-Za-z0-9-], max 63; not "client"/"aws". */
  name: string;
  /** IPv4 address of eth0 (prefix length from LabOptions.cidrPrefix). */
  ip: string;
  /** EBS volume id of the data volume, e.g. "vol-0abc123": the by-id link is named after it. */
  volumeId: string;
  /** The user-data script (plain text, e.g. "#!/bin/bash\n..."): cloud-init receives it gzip'd. */
  userData: string;
}

export interface LabOptions {
  /** Prefix length of every address, e.g. 24. */
  cidrPrefix: number;
  /** Address of the "client" namespace (lab.client). */
  clientIp: string;
  /** Address of the AWS endpoint namespace (conventionally <subnet>.2); it also gets 169.254.169.254/32. */
  endpointIp: string;
  /** An address for this machine itself on the bridge, so its own programs reach the hosts. */
  gatewayIp?: string;
  /** AWS region: names ssm/monitoring/sts/s3/kms.<region>.amazonaws.com in /etc/hosts. Default "us-east-1". */
  region?: string;
  /** More names that every host resolves to the endpoint. */
  extraEndpointNames?: string[];
  /** Size of each blank data volume. Default 256. */
  volumeMiB?: number;
  /** Outlive this process: no teardown on exit, never swept; removed by destroyPersistentLabs(). Default false. */
  persistent?: boolean;
  /** The rootfs to boot (default: ensureRootfs(), built and cached on first use). */
  rootfs?: Rootfs;
  /** Boot every host at the end of create(). Default true (the boot runs on; see Host.waitCloudInit). */
  start?: boolean;
  /** Base dir of lab dirs. Default DEFAULT_LAB_BASE_DIR. */
  baseDir?: string;
  /** Progress lines (rootfs build). Default console.log. */
  log?: (line: string) => void;
}

export interface ExecOptions {
  env?: Record<string, string>;
  input?: string;
  /** Default 120000. On expiry the command is killed and code is 124. */
  timeoutMs?: number;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A namespace of the lab you can run commands in. */
export interface LabNode {
  readonly name: string;
  readonly ip: string;
  /** The network namespace (`ip netns exec <netns>`). */
  readonly netns: string;
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** bash -c script. */
  sh(script: string, opts?: ExecOptions): Promise<ExecResult>;
  /**
   * Cut the node off from everyone, as a partition does in a VPC: every packet to and from it is dropped in
   * its namespace (no RST, no ICMP, ARP still answered), so peers and clients wait for their own timeouts.
   * Resolves with the time (epoch ms) the drop took effect: the fault's own time, not when it was asked for.
   */
  networkDown(): Promise<number>;
  networkUp(): Promise<void>;
  /** Drop every packet between this node and these addresses, both ways (undo with `unpartition`). */
  partition(peerIps: string[]): Promise<void>;
  unpartition(peerIps?: string[]): Promise<void>;
}

export interface CloudInitResult {
  /** Exit code of `cloud-init status --wait --long` (0: done; 1: error; 124: timed out). */
  code: number;
  /** "done", "error", "disabled", "running", ... (the `status:` line). */
  status: string;
  /** The full `cloud-init status --long` output. */
  detail: string;
  /** /var/log/cloud-init-output.log: the user-data's output. */
  output: string;
}

export interface Host extends LabNode {
  readonly volumeId: string;
  /** /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id> (inside the host). */
  readonly byIdPath: string;
  /** The current EC2 instance id (a new one after replace()). */
  readonly instanceId: string;
  /** The loop device backing the data volume now, e.g. "/dev/loop3". */
  readonly volumeDevice: string;
  /** The host's dir (overlay upper/work, merged root, supervisor state and logs). */
  readonly dir: string;
  /** The merged root filesystem, as seen from this machine (while mounted). */
  readonly rootDir: string;
  /** Console output of every boot. */
  readonly consoleLog: string;
  /** Boots started so far (a reboot, from anywhere, adds one). */
  bootCount(): number;
  /** Is the container running (its systemd is PID 1 of a live container)? */
  isRunning(): boolean;
  /** Boot (first boot of a new instance, or after powerLoss()/stop()). Returns once systemd runs. */
  start(): Promise<void>;
  /** `systemctl reboot` inside; resolves when the next boot's systemd runs (not necessarily fully booted). */
  reboot(opts?: { timeoutMs?: number }): Promise<void>;
  /** Wait for the boot after `afterBoot` (e.g. a reboot issued from inside the host) to start. */
  waitForBoot(afterBoot: number, timeoutMs?: number): Promise<void>;
  /** Clean shutdown (`systemctl poweroff`), like stopping the instance. */
  stop(opts?: { timeoutMs?: number }): Promise<void>;
  /**
   * The instance dies as an EC2 instance does: its network goes silent first (every packet to and from it
   * dropped: no RST, no FIN; peers and clients wait for their timeouts), then every process is killed. What
   * its programs wrote but did not flush stays in this machine's page cache: see powerLoss. start() boots it
   * again (same instance id) with its network back. Resolves with the time (epoch ms) it went silent.
   */
  instanceLoss(): Promise<number>;
  /**
   * As instanceLoss, and the data volume loses every write not yet flushed to it: its filesystem is shut
   * down without writing its dirty pages or its journal (ext4's FS_IOC_SHUTDOWN with NOLOGFLUSH, as xfstests
   * simulate a power failure) before the processes die. The next mount replays the journal: what was
   * fsync'd is there, the rest is gone. Resolves with the time (epoch ms) it went silent.
   */
  powerLoss(): Promise<number>;
  /**
   * Terminate and launch a new instance in its place: new instance id, fresh root (empty overlay
   * upper), same name/IP; with blankVolume a new blank volume under the same volume id, else the old
   * volume re-attached; with userData a new user-data. Then boots.
   */
  replace(opts?: { blankVolume?: boolean; userData?: string }): Promise<void>;
  /** Grow the data volume to `mib` (EBS ModifyVolume): the host sees a bigger device, its filesystem does not change. */
  growVolume(mib: number): Promise<void>;
  /** The data volume's size now. */
  volumeMiB(): number;
  /** `systemctl is-system-running --wait` inside: "running" or "degraded" (or what it reports at timeout). */
  waitBooted(timeoutMs?: number): Promise<string>;
  /** `cloud-init status --wait --long` and the user-data's output. */
  waitCloudInit(timeoutMs?: number): Promise<CloudInitResult>;
}

export const DEFAULT_LAB_BASE_DIR = "/var/lib/redis-stack-lab/labs";

// ------------------------------------------------------------------ constants

const NS_PREFIX = "rlab";
/** The nftables tables a node's namespace drops packets with: a partition, and a dead instance's silence. */
const CUT_TABLE = "rlab_cut";
const DEAD_TABLE = "rlab_dead";
const STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const METADATA_IP = "169.254.169.254";
const DEFAULT_EXEC_TIMEOUT_MS = 120_000;
const NSPAWN_RUN_DIR = "/run/systemd/nspawn";
const SUPERVISOR = path.join(__dirname, "supervise.sh");
/** Lab ids: "h" + 3 hex digits (see the header). */
const ID_RE = "h[0-9a-f]{3}";

/**
 * FS_IOC_SHUTDOWN (_IOR('X', 125, __u32)) with EXT4_GOING_FLAGS_NOLOGFLUSH (2) on the directory argv[1]: the
 * filesystem stops, dropping its dirty pages and uncommitted journal.
 */
const FS_SHUTDOWN_PY = [
  "import fcntl, os, struct, sys",
  "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)",
  "fcntl.ioctl(fd, 0x8004587D, struct.pack('I', 2))",
].join("; ");

// ------------------------------------------------------------------ process helpers

function signalNumber(sig: NodeJS.Signals | null): number {
  if (!sig) return 0;
  return (os.constants.signals as Record<string, number | undefined>)[sig] ?? 0;
}

interface RunOptions {
  input?: string;
  timeoutMs?: number;
}

/**
 * Run a command in its own process group and collect its output. Never rejects. Resolves shortly after
 * the process exits even if a daemon it left behind still holds stdout/stderr open.
 */
function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let settled = false;
    let timedOut = false;
    let exitCode: number | null = null;
    let killTimer: NodeJS.Timeout | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    // stdin is /dev/null or a regular (already unlinked) file holding the input, never a socket: bash
    // sources ~/.bashrc when its stdin is a socket ("run by sshd" detection).
    let stdinFd: number | "ignore" = "ignore";
    if (opts.input !== undefined) {
      const f = path.join(os.tmpdir(), `hostlab-stdin-${process.pid}-${randomHex(6)}`);
      fs.writeFileSync(f, opts.input, { mode: 0o600 });
      stdinFd = fs.openSync(f, "r");
      fs.rmSync(f, { force: true });
    }
    const child = spawn(cmd, args, { detached: true, stdio: [stdinFd, "pipe", "pipe"], cwd: "/" });
    if (typeof stdinFd === "number") fs.closeSync(stdinFd);

    const finish = (extraErr = ""): void => {
      if (settled) return;
      settled = true;
      if (killTimer) clearTimeout(killTimer);
      if (graceTimer) clearTimeout(graceTimer);
      child.stdout?.destroy();
      child.stderr?.destroy();
      let stderr = Buffer.concat(err).toString("utf8") + extraErr;
      let code = exitCode ?? 127;
      if (timedOut) {
        code = 124;
        stderr += `\n[hostlab] ${cmd} timed out after ${opts.timeoutMs} ms and was killed\n`;
      }
      resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr });
    };
    child.stdout?.on("data", (d: Buffer) => out.push(d));
    child.stderr?.on("data", (d: Buffer) => err.push(d));
    child.on("error", (e: Error) => {
      exitCode = 127;
      finish(`[hostlab] cannot run ${cmd}: ${e.message}\n`);
    });
    child.on("exit", (code, signal) => {
      exitCode = code ?? 128 + signalNumber(signal);
      graceTimer = setTimeout(() => finish(), 500);
    });
    child.on("close", () => finish());
    if (opts.timeoutMs && opts.timeoutMs > 0) {
      killTimer = setTimeout(() => {
        timedOut = true;
        if (child.pid) killPid(-child.pid);
      }, opts.timeoutMs);
    }
  });
}

async function runOk(cmd: string, args: string[], opts: RunOptions = {}): Promise<ExecResult> {
  const r = await run(cmd, args, { timeoutMs: 60_000, ...opts });
  if (r.code !== 0) {
    throw new Error(`[hostlab] ${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r;
}

function runSync(cmd: string, args: string[], timeoutMs = 15_000): ExecResult {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "pipe"] });
  return {
    code: r.status ?? (r.error ? 127 : 128 + signalNumber(r.signal)),
    stdout: r.stdout ?? "",
    stderr: r.stderr ?? "",
  };
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ...]; starttime is [19]. */
function procStat(pid: number): string[] | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

function processAlive(pid: number, startTime?: string): boolean {
  const f = procStat(pid);
  if (!f || f[0] === "Z" || f[0] === "X") return false;
  return startTime === undefined || f[19] === startTime;
}

function killPid(pid: number, sig: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

function readFileOr(file: string, fallback = ""): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return fallback;
  }
}

function randomHex(bytes: number): string {
  return crypto.randomBytes(bytes).toString("hex");
}

function ipv4ToInt(ip: string): number {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    throw new Error(`[hostlab] not an IPv4 address: ${ip}`);
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

function netnsPids(ns: string): number[] {
  const r = runSync("ip", ["netns", "pids", ns]);
  if (r.code !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number);
}

/** SIGKILL everything in a network namespace until it is empty (best effort, ~5 s max). */
function killNetnsSync(ns: string): void {
  for (let i = 0; i < 50; i++) {
    const pids = netnsPids(ns).filter((p) => processAlive(p));
    if (pids.length === 0) return;
    for (const p of pids) killPid(p);
    sleepSync(100);
  }
}

function commandExists(cmd: string): boolean {
  return runSync("bash", ["-c", 'command -v "$1" >/dev/null', "bash", cmd]).code === 0;
}

// ------------------------------------------------------------------ exit-time cleanup registry

/** The real process object (jest hands test modules a copy whose events never fire). */
const realProcess = vm.runInThisContext("process") as NodeJS.Process;
const REGISTRY_KEY = Symbol.for("redis-stack.hosts.liveLabs.v1");

function liveLabs(): Set<() => void> {
  const holder = realProcess as unknown as Record<symbol, Set<() => void> | undefined>;
  let set = holder[REGISTRY_KEY];
  if (!set) {
    const labs = new Set<() => void>();
    set = labs;
    holder[REGISTRY_KEY] = labs;
    const cleanAll = (): void => {
      for (const teardown of [...labs]) {
        try {
          teardown();
        } catch {
          /* best effort */
        }
      }
    };
    realProcess.on("exit", cleanAll);
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      const onSignal = (): void => {
        cleanAll();
        realProcess.removeListener(sig, onSignal);
        if (realProcess.listenerCount(sig) === 0) realProcess.kill(realProcess.pid, sig);
      };
      realProcess.on(sig, onSignal);
    }
  }
  return set;
}

// ------------------------------------------------------------------ environment checks

export type LabCheck = { ok: true } | { ok: false; reason: string };
let canRunCache: LabCheck | undefined;

/** Can this machine run a HostLab? (Linux, root, the tools, overlayfs, loop devices, network namespaces.) */
/** `recheck`: look again (after installing what was missing). */
export function canRunLab(recheck = false): LabCheck {
  if (canRunCache && !recheck) return canRunCache;
  const check = (): LabCheck => {
    if (process.platform !== "linux") return { ok: false, reason: `HostLab needs Linux (not ${process.platform})` };
    if (typeof process.getuid !== "function" || process.getuid() !== 0)
      return { ok: false, reason: "HostLab needs root (namespaces, mounts, loop devices, systemd-nspawn)" };
    const needed: Record<string, string> = {
      ip: "iproute2",
      nsenter: "util-linux",
      setsid: "util-linux",
      flock: "util-linux",
      losetup: "mount",
      mount: "mount",
      umount: "mount",
      "systemd-nspawn": "systemd-container",
      debootstrap: "debootstrap",
      chroot: "coreutils",
      "dpkg-scanpackages": "dpkg-dev",
      gpg: "gnupg",
      openssl: "openssl",
      bash: "bash",
    };
    const missing = Object.keys(needed).filter((c) => !commandExists(c));
    if (missing.length > 0)
      return {
        ok: false,
        reason: `HostLab needs: ${missing.join(", ")} (apt-get install ${[...new Set(missing.map((m) => needed[m]))].join(" ")})`,
      };
    // The lab's redis-py writer (lab/writer.py) runs on Debian's python3-redis, as lab/install-packages.sh installs it.
    if (!fs.existsSync("/usr/lib/python3/dist-packages/redis/__init__.py"))
      return {
        ok: false,
        reason: "the lab's redis-py writer needs Debian's python3-redis (apt-get install python3-redis)",
      };
    if (!fs.existsSync("/dev/loop-control")) return { ok: false, reason: "HostLab needs loop devices" };
    if (!/\boverlay\b/.test(readFileOr("/proc/filesystems")))
      return { ok: false, reason: "HostLab needs overlayfs (not in /proc/filesystems)" };
    const probe = `rlabprobe${process.pid % 100000}`;
    const r = runSync("ip", ["netns", "add", probe]);
    if (r.code !== 0) return { ok: false, reason: `cannot create network namespaces: ${r.stderr.trim()}` };
    runSync("ip", ["netns", "del", probe]);
    return { ok: true };
  };
  canRunCache = check();
  return canRunCache;
}

/**
 * describe() when the lab can run. Otherwise, in CI (CI=true) or as root, who can install what is missing
 * (`sudo npm test` is the README's command): a failing test carrying the reason; else (a normal user, who
 * cannot run the lab at all) a logged reason and describe.skip.
 */
export function describeLab(name: string, fn: () => void): void {
  const can = canRunLab();
  if (can.ok) {
    describe(name, fn);
    return;
  }
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  if (process.env.CI === "true" || root) {
    describe(name, () => {
      test("HostLab can run on this machine", () => {
        throw new Error(
          `HostLab cannot run here (${root ? "as root" : "CI=true"}, so this fails instead of skipping): ${can.reason}; ` +
            "sudo bash lab/install-packages.sh installs what the lab needs",
        );
      });
    });
    return;
  }
  console.log(`Skipping "${name}": ${can.reason}`);
  describe.skip(name, fn);
}

// ------------------------------------------------------------------ teardown and stale-lab sweeping

function listNetns(): string[] {
  const r = runSync("ip", ["netns", "list"]);
  if (r.code !== 0) return [];
  return r.stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((s): s is string => !!s);
}

function listLinks(): string[] {
  const r = runSync("ip", ["-o", "link", "show"]);
  if (r.code !== 0) return [];
  return r.stdout
    .split("\n")
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
    .filter((s): s is string => !!s);
}

function listLoops(): { name: string; backFile: string }[] {
  const r = runSync("losetup", ["--list", "--noheadings", "--raw", "--output", "NAME,BACK-FILE"]);
  if (r.code !== 0) return [];
  return r.stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      const i = l.indexOf(" ");
      const name = i < 0 ? l : l.slice(0, i);
      const backFile =
        i < 0
          ? ""
          : l.slice(i + 1).replace(/\\x([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
      return { name, backFile };
    });
}

/** Mount points at or under dir (deepest first), from this mount namespace. */
function mountsUnder(dir: string): string[] {
  const unescape = (s: string): string =>
    s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileOr("/proc/self/mountinfo")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m): m is string => !!m)
    .map(unescape)
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** "<pid> <starttime>" files written by supervise.sh; kill the process only if it is still the same one. */
function killPidFile(file: string): void {
  const [pid, start] = readFileOr(file).trim().split(/\s+/);
  if (pid && /^\d+$/.test(pid) && processAlive(Number(pid), start)) killPid(Number(pid));
}

/** The container's PID 1 from a host dir's init.pid, if it is still a container's systemd. */
function liveInitPid(hostDir: string): number | undefined {
  const s = readFileOr(path.join(hostDir, "init.pid")).trim();
  if (!/^\d+$/.test(s)) return undefined;
  const pid = Number(s);
  if (!processAlive(pid)) return undefined;
  if (readFileOr(`/proc/${pid}/comm`).trim() !== "systemd") return undefined;
  if (!/^NSpid:\s+\d+\s+1\s*$/m.test(readFileOr(`/proc/${pid}/status`))) return undefined;
  return pid;
}

/** SIGKILL a host's container (every process in its pid namespace), nspawn and supervisor; wait until gone. */
function killHostSync(hostDir: string, netns: string | undefined): void {
  const nspawn = Number(readFileOr(path.join(hostDir, "nspawn.pid")).trim());
  const isNspawn = (): boolean =>
    nspawn > 0 && processAlive(nspawn) && readFileOr(`/proc/${nspawn}/comm`).startsWith("systemd-nspawn");
  // Killing PID 1 of a pid namespace kills every process in it.
  const init = liveInitPid(hostDir);
  if (init) killPid(init);
  if (isNspawn()) killPid(nspawn);
  // The container's PID 1 may not be recorded yet (early boot): everything in the netns goes.
  if (netns) killNetnsSync(netns);
  // The supervisor reaps nspawn (exit status != 133: it does not boot again) and ends; then make sure.
  for (let i = 0; i < 40 && fs.existsSync(`/proc/${nspawn}`) && nspawn > 0; i++) sleepSync(50);
  for (let i = 0; i < 100 && init !== undefined && processAlive(init); i++) sleepSync(50);
  killPidFile(path.join(hostDir, "supervisor.pid"));
  for (const f of ["init.pid", "nspawn.pid", "supervisor.pid"]) fs.rmSync(path.join(hostDir, f), { force: true });
}

/** Remove everything of one lab: processes, mounts, loop devices, namespaces, links, its dir. */
function removeLabSync(id: string, labDir: string | undefined): void {
  const nsRe = new RegExp(`^${NS_PREFIX}-${id}-`);
  const namespaces = listNetns().filter((n) => nsRe.test(n));
  if (labDir) {
    const hostsDir = path.join(labDir, "hosts");
    let names: string[] = [];
    try {
      names = fs.readdirSync(hostsDir);
    } catch {
      /* no hosts */
    }
    for (const name of names) killHostSync(path.join(hostsDir, name), `${NS_PREFIX}-${id}-${name}`);
  }
  for (const ns of namespaces) killNetnsSync(ns);
  if (labDir) {
    for (const m of mountsUnder(labDir)) {
      if (runSync("umount", [m]).code !== 0) runSync("umount", ["-l", m]);
    }
    for (const loop of listLoops()) {
      if (loop.backFile.startsWith(`${labDir}/`)) runSync("losetup", ["-d", loop.name]);
    }
  }
  for (const ns of namespaces) runSync("ip", ["netns", "del", ns]);
  const linkRe = new RegExp(`^(${NS_PREFIX}${id}|rl${id}v[0-9a-z]+)$`);
  for (const link of listLinks()) if (linkRe.test(link)) runSync("ip", ["link", "del", link]);
  // Never delete through a mount that would not go away (the overlay's lower dir is the shared rootfs).
  if (labDir && mountsUnder(labDir).length === 0) {
    try {
      fs.rmSync(labDir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

const LAB_STATE_FILE = "lab.json";

interface SavedHost {
  spec: HostSpec;
  index: number;
  instanceId: string;
  machineUuid: string;
  volumeGeneration: number;
  volumeFile: string;
  volumeDevice: string;
}

interface SavedLab {
  id: string;
  opts: LabOptions;
  rootfs: Rootfs;
  hosts: SavedHost[];
}

interface OwnerInfo {
  pid?: number;
  start?: string;
  persistent?: boolean;
}

function readOwner(labDir: string): OwnerInfo | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(labDir, "owner.json"), "utf8")) as OwnerInfo;
  } catch {
    return undefined;
  }
}

function labDirsOnDisk(baseDir: string): { id: string; dir: string }[] {
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(baseDir);
  } catch {
    return [];
  }
  const re = new RegExp(`^${NS_PREFIX}-(${ID_RE})$`);
  return entries.flatMap((e) => {
    const id = re.exec(e)?.[1];
    return id ? [{ id, dir: path.join(baseDir, e) }] : [];
  });
}

/**
 * Remove leftovers of crashed runs: labs whose owner process is gone and that are not persistent, and
 * namespaces/links/loop devices of ours that belong to no lab dir. Returns the swept lab ids.
 */
export function sweepStaleLabs(baseDir = DEFAULT_LAB_BASE_DIR): string[] {
  const swept: string[] = [];
  const known = new Set<string>();
  for (const { id, dir } of labDirsOnDisk(baseDir)) {
    known.add(id);
    const o = readOwner(dir);
    if (o?.persistent === true) continue;
    if (o && typeof o.pid === "number" && processAlive(o.pid, o.start)) continue;
    removeLabSync(id, dir);
    swept.push(id);
  }
  const orphanIds = new Set<string>();
  const nsRe = new RegExp(`^${NS_PREFIX}-(${ID_RE})-`);
  for (const ns of listNetns()) {
    const id = nsRe.exec(ns)?.[1];
    if (id && !known.has(id)) orphanIds.add(id);
  }
  const linkRe = new RegExp(`^(?:${NS_PREFIX}(${ID_RE})|rl(${ID_RE})v[0-9a-z]+)$`);
  for (const l of listLinks()) {
    const m = linkRe.exec(l);
    const id = m?.[1] ?? m?.[2];
    if (id && !known.has(id)) orphanIds.add(id);
  }
  for (const id of orphanIds) {
    removeLabSync(id, undefined);
    swept.push(id);
  }
  const loopRe = new RegExp(`^${baseDir}/${NS_PREFIX}-(${ID_RE})/`);
  for (const l of listLoops()) {
    const id = loopRe.exec(l.backFile)?.[1];
    if (id && !known.has(id)) runSync("losetup", ["-d", l.name]);
  }
  return swept;
}

/** Remove every persistent lab (the local mode's `down`). Returns the removed lab ids. */
export function destroyPersistentLabs(baseDir = DEFAULT_LAB_BASE_DIR): string[] {
  const removed: string[] = [];
  for (const { id, dir } of labDirsOnDisk(baseDir)) {
    if (readOwner(dir)?.persistent !== true) continue;
    removeLabSync(id, dir);
    removed.push(id);
  }
  return removed;
}

// ------------------------------------------------------------------ nodes

const BASE_ENV: Record<string, string> = {
  PATH: STD_PATH,
  HOME: "/root",
  USER: "root",
  LOGNAME: "root",
  SHELL: "/bin/bash",
  LANG: "C.UTF-8",
};

function envArgs(opts: ExecOptions): string[] {
  return Object.entries({ ...BASE_ENV, ...(opts.env ?? {}) }).map(([k, v]) => `${k}=${v}`);
}

/** Runs this machine's own programs inside a lab network namespace, with a clean environment. */
function execInNetns(netns: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  if (argv.length === 0) throw new Error("[hostlab] exec: empty argv");
  return run("ip", ["netns", "exec", netns, "env", "-i", ...envArgs(opts), ...argv], {
    input: opts.input,
    timeoutMs: opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
  });
}

/**
 * A host's network seen with this machine's programs (node, redis-cli): a client that sits on the host's
 * network, cut off with it by a partition. Its link is the host's: partition the host itself.
 */
export function onHostNetwork(host: Host): LabNode {
  return {
    name: host.name,
    ip: host.ip,
    netns: host.netns,
    exec: (argv, opts) => execInNetns(host.netns, argv, opts),
    sh: (script, opts) => execInNetns(host.netns, ["bash", "-c", script], opts),
    networkDown: () => host.networkDown(),
    networkUp: () => host.networkUp(),
    partition: (peerIps) => host.partition(peerIps),
    unpartition: (peerIps) => host.unpartition(peerIps),
  };
}

/** A network namespace on the bridge (hosts, the client, the AWS endpoint). */
class NamespaceNode implements LabNode {
  readonly netns: string;
  readonly veth: string;

  constructor(
    protected readonly lab: HostLab,
    readonly name: string,
    readonly ip: string,
    vethSuffix: string,
  ) {
    this.netns = `${NS_PREFIX}-${lab.id}-${name}`;
    this.veth = `rl${lab.id}v${vethSuffix}`;
  }

  async createNetwork(extraAddrs: string[] = []): Promise<void> {
    await runOk("ip", ["netns", "add", this.netns]);
    await runOk("ip", ["link", "add", this.veth, "type", "veth", "peer", "name", "eth0", "netns", this.netns]);
    await runOk("ip", ["link", "set", this.veth, "master", this.lab.bridge]);
    await runOk("ip", ["link", "set", this.veth, "up"]);
    await runOk("ip", ["-n", this.netns, "link", "set", "lo", "up"]);
    await runOk("ip", ["-n", this.netns, "addr", "add", `${this.ip}/${this.lab.cidrPrefix}`, "dev", "eth0"]);
    for (const a of extraAddrs) await runOk("ip", ["-n", this.netns, "addr", "add", a, "dev", "eth0"]);
    await runOk("ip", ["-n", this.netns, "link", "set", "eth0", "up"]);
  }

  /** Runs this machine's own programs in the namespace (plain `ip netns exec`), with a clean environment. */
  exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return execInNetns(this.netns, argv, opts);
  }

  sh(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(["bash", "-c", script], opts);
  }

  /** Addresses this node drops packets to and from ("all": every address but loopback). */
  private cut: Set<string> | "all" = new Set();

  async networkDown(): Promise<number> {
    this.cut = "all";
    await this.applyCut(CUT_TABLE, "all");
    return Date.now();
  }

  async networkUp(): Promise<void> {
    this.cut = new Set();
    await this.applyCut(CUT_TABLE, new Set());
  }

  async partition(peerIps: string[]): Promise<void> {
    if (this.cut === "all") return;
    for (const ip of peerIps) this.cut.add(ip);
    await this.applyCut(CUT_TABLE, this.cut);
  }

  async unpartition(peerIps?: string[]): Promise<void> {
    if (this.cut === "all" || peerIps === undefined) this.cut = new Set();
    else for (const ip of peerIps) this.cut.delete(ip);
    await this.applyCut(CUT_TABLE, this.cut);
  }

  /**
   * Drops packets in the node's own namespace with nftables, in a table of its own: input and output hooks at
   * a priority before connection tracking, so established connections go silent too. An empty cut removes it.
   */
  protected async applyCut(table: string, cut: Set<string> | "all"): Promise<void> {
    const nft = (script: string) => execInNetns(this.netns, ["nft", "-f", "-"], { input: script, timeoutMs: 10_000 });
    // Create-then-delete removes the table whether or not it exists, in one transaction with the new rules.
    const rules =
      cut === "all"
        ? { input: 'iifname != "lo" drop', output: 'oifname != "lo" drop' }
        : cut.size > 0
          ? { input: `ip saddr { ${[...cut].join(", ")} } drop`, output: `ip daddr { ${[...cut].join(", ")} } drop` }
          : undefined;
    const script = [
      `table inet ${table}`,
      `delete table inet ${table}`,
      ...(rules
        ? [
            `table inet ${table} {`,
            `  chain input { type filter hook input priority -400; policy accept; ${rules.input}; }`,
            `  chain output { type filter hook output priority -400; policy accept; ${rules.output}; }`,
            "}",
          ]
        : []),
    ].join("\n");
    const r = await nft(script + "\n");
    if (r.code !== 0) throw new Error(`[hostlab] ${this.name}: nft: ${r.stderr.trim()} (is nftables installed?)`);
  }
}

class HostImpl extends NamespaceNode implements Host {
  readonly volumeId: string;
  readonly byIdPath: string;
  readonly dir: string;
  readonly rootDir: string;
  readonly consoleLog: string;
  instanceId = "";
  volumeDevice = "";
  /** systemd-nspawn --uuid: the container's machine-id source, stable for the instance's lifetime. */
  private machineUuid = "";
  private userData: string;
  private volumeGeneration = 0;
  private volumeFile = "";

  /** What a later process needs to drive this host again (a persistent lab's lab.json). */
  saved(): SavedHost {
    return {
      spec: { name: this.name, ip: this.ip, volumeId: this.volumeId, userData: this.userData },
      index: this.index,
      instanceId: this.instanceId,
      machineUuid: this.machineUuid,
      volumeGeneration: this.volumeGeneration,
      volumeFile: this.volumeFile,
      volumeDevice: this.volumeDevice,
    };
  }

  restore(s: SavedHost): void {
    this.instanceId = s.instanceId;
    this.machineUuid = s.machineUuid;
    this.volumeGeneration = s.volumeGeneration;
    this.volumeFile = s.volumeFile;
    this.volumeDevice = s.volumeDevice;
  }

  readonly index: number;

  constructor(lab: HostLab, spec: HostSpec, index: number) {
    super(lab, spec.name, spec.ip, String(index));
    this.index = index;
    this.volumeId = spec.volumeId;
    this.userData = spec.userData;
    this.byIdPath = `/dev/disk/by-id/${this.byIdName()}`;
    this.dir = path.join(lab.dir, "hosts", spec.name);
    this.rootDir = path.join(this.dir, "root");
    this.consoleLog = path.join(this.dir, "console.log");
  }

  private byIdName(): string {
    return `nvme-Amazon_Elastic_Block_Store_${this.volumeId.replace("-", "")}`;
  }

  async createNetwork(): Promise<void> {
    await super.createNetwork();
    await runOk("ip", ["-n", this.netns, "route", "add", `${METADATA_IP}/32`, "via", this.lab.endpointIp]);
  }

  // ---- the instance's root filesystem

  /** A new instance: fresh overlay upper with the per-instance files, mounted at rootDir. */
  async prepareInstance(): Promise<void> {
    this.instanceId = `i-0${randomHex(8)}`;
    this.machineUuid = crypto.randomUUID();
    for (const m of mountsUnder(this.rootDir)) await runOk("umount", [m]);
    for (const d of ["upper", "work"]) fs.rmSync(path.join(this.dir, d), { recursive: true, force: true });
    const upper = path.join(this.dir, "upper");
    const work = path.join(this.dir, "work");
    for (const d of [upper, work, this.rootDir]) fs.mkdirSync(d, { recursive: true, mode: 0o755 });
    const lower = this.lab.rootfs.rootfs;
    const write = (rel: string, content: string | Buffer, mode: number): void => {
      // Parent dirs get the lower dir's owner/mode: an upper dir's attributes win in the merged view.
      const parts = path.dirname(rel).split("/").filter(Boolean);
      for (let i = 1; i <= parts.length; i++) {
        const sub = parts.slice(0, i).join("/");
        const dst = path.join(upper, sub);
        if (fs.existsSync(dst)) continue;
        fs.mkdirSync(dst);
        try {
          const st = fs.statSync(path.join(lower, sub));
          fs.chmodSync(dst, st.mode & 0o7777);
          fs.chownSync(dst, st.uid, st.gid);
        } catch {
          fs.chmodSync(dst, 0o755);
        }
      }
      fs.writeFileSync(path.join(upper, rel), content, { mode });
      fs.chmodSync(path.join(upper, rel), mode);
    };
    const r = this.lab.region;
    const endpointNames = [
      "deb.debian.org",
      `ssm.${r}.amazonaws.com`,
      `monitoring.${r}.amazonaws.com`,
      `sts.${r}.amazonaws.com`,
      `s3.${r}.amazonaws.com`,
      `kms.${r}.amazonaws.com`,
      ...this.lab.extraEndpointNames,
    ];
    write("etc/hostname", `${this.name}\n`, 0o644);
    write(
      "etc/hosts",
      [
        "127.0.0.1\tlocalhost",
        `${this.ip}\t${this.name}`,
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        "# The lab's AWS endpoint and Debian mirror stand-in",
        `${this.lab.endpointIp}\t${endpointNames.join(" ")}`,
        "",
      ].join("\n"),
      0o644,
    );
    write(
      "var/lib/cloud/seed/nocloud/meta-data",
      `instance-id: ${this.instanceId}\nlocal-hostname: ${this.name}\n`,
      0o600,
    );
    write("var/lib/cloud/seed/nocloud/user-data", zlib.gzipSync(Buffer.from(this.userData, "utf8")), 0o600);
    await runOk("mount", [
      "-t",
      "overlay",
      `${NS_PREFIX}-${this.lab.id}-${this.name}`,
      "-o",
      `lowerdir=${lower},upperdir=${upper},workdir=${work}`,
      this.rootDir,
    ]);
    this.lab.save();
  }

  // ---- the data volume

  async createVolume(): Promise<void> {
    this.detachVolume();
    this.volumeGeneration++;
    const dir = path.join(this.lab.dir, "volumes");
    fs.mkdirSync(dir, { recursive: true });
    this.volumeFile = path.join(dir, `${this.name}-${this.volumeId}-${this.volumeGeneration}.img`);
    const fd = fs.openSync(this.volumeFile, "w", 0o600);
    fs.ftruncateSync(fd, this.lab.volumeMiB * 1024 * 1024);
    fs.closeSync(fd);
    this.volumeDevice = await this.lab.attachLoop(this.volumeFile);
    this.lab.save();
  }

  async growVolume(mib: number): Promise<void> {
    if (!this.volumeFile || !this.volumeDevice) throw new Error(`[hostlab] ${this.name} has no volume attached`);
    if (fs.statSync(this.volumeFile).size > mib * 1024 * 1024) throw new Error("[hostlab] EBS volumes do not shrink");
    fs.truncateSync(this.volumeFile, mib * 1024 * 1024);
    await runOk("losetup", ["-c", this.volumeDevice]);
  }

  volumeMiB(): number {
    return this.volumeFile ? Math.round(fs.statSync(this.volumeFile).size / (1024 * 1024)) : 0;
  }

  detachVolume(): void {
    if (this.volumeDevice) runSync("losetup", ["-d", this.volumeDevice]);
    if (this.volumeFile) fs.rmSync(this.volumeFile, { force: true });
    this.volumeDevice = "";
    this.volumeFile = "";
  }

  // ---- state

  bootCount(): number {
    const n = Number(readFileOr(path.join(this.dir, "boots"), "0").trim());
    return Number.isFinite(n) ? n : 0;
  }

  private initPid(): number | undefined {
    return liveInitPid(this.dir);
  }

  private supervisorAlive(): boolean {
    const [pid, start] = readFileOr(path.join(this.dir, "supervisor.pid")).trim().split(/\s+/);
    return !!pid && /^\d+$/.test(pid) && processAlive(Number(pid), start);
  }

  isRunning(): boolean {
    return this.initPid() !== undefined;
  }

  // ---- lifecycle

  private nspawnArgs(): string[] {
    return [
      "systemd-nspawn",
      "--boot",
      "--quiet",
      "--register=no",
      "--keep-unit",
      "--console=read-only",
      `--machine=${NS_PREFIX}-${this.lab.id}-${this.name}`,
      `--hostname=${this.name}`,
      `--uuid=${this.machineUuid}`,
      `--directory=${this.rootDir}`,
      `--network-namespace-path=/run/netns/${this.netns}`,
      `--bind=${this.volumeDevice}`,
      // Root on an instance may grow a mounted ext4 filesystem (EXT4_IOC_RESIZE_FS needs it); nspawn drops it.
      "--capability=CAP_SYS_RESOURCE",
      "--resolv-conf=off",
      "--timezone=off",
      "--link-journal=no",
    ];
  }

  async start(): Promise<void> {
    if (this.supervisorAlive() || this.isRunning()) throw new Error(`[hostlab] ${this.name} is already running`);
    // A dead instance's silence ends with its next boot (a partition, the network's doing, does not).
    await this.applyCut(DEAD_TABLE, new Set());
    ensureNspawnRunDir();
    const before = this.bootCount();
    const logFd = fs.openSync(path.join(this.dir, "supervisor.log"), "a");
    const child = spawn(
      "setsid",
      ["bash", SUPERVISOR, this.dir, this.volumeDevice, this.byIdName(), "--", ...this.nspawnArgs()],
      {
        detached: true,
        stdio: ["ignore", logFd, logFd],
        cwd: "/",
        env: { PATH: STD_PATH, LANG: "C.UTF-8", SYSTEMD_LOG_LEVEL: "warning" },
      },
    );
    fs.closeSync(logFd);
    child.on("error", () => undefined);
    child.unref();
    await this.waitForBoot(before, 60_000);
  }

  async waitForBoot(afterBoot: number, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.bootCount() > afterBoot && this.initPid() !== undefined) return;
      await sleep(50);
    }
    throw new Error(
      `[hostlab] ${this.name}: boot ${afterBoot + 1} did not start within ${timeoutMs} ms; ` +
        `console: ${this.consoleLog}\n${readFileOr(path.join(this.dir, "events.log")).slice(-2000)}`,
    );
  }

  async reboot(opts: { timeoutMs?: number } = {}): Promise<void> {
    const before = this.bootCount();
    // The command's connection may be cut by the shutdown: its exit status says nothing.
    await this.exec(["systemctl", "reboot"], { timeoutMs: 30_000 });
    await this.waitForBoot(before, opts.timeoutMs ?? 180_000);
  }

  async stop(opts: { timeoutMs?: number } = {}): Promise<void> {
    await this.exec(["systemctl", "poweroff"], { timeoutMs: 30_000 });
    const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
    while (this.supervisorAlive() || this.isRunning()) {
      if (Date.now() > deadline) throw new Error(`[hostlab] ${this.name} did not power off`);
      await sleep(100);
    }
  }

  async instanceLoss(): Promise<number> {
    await this.applyCut(DEAD_TABLE, "all");
    const silentAt = Date.now();
    killHostSync(this.dir, this.netns);
    return silentAt;
  }

  async powerLoss(): Promise<number> {
    await this.applyCut(DEAD_TABLE, "all");
    const silentAt = Date.now();
    this.shutdownDataFilesystem();
    killHostSync(this.dir, this.netns);
    // Nothing the shut-down filesystem left in this machine's buffer cache may reach the next mount.
    if (this.volumeDevice) runSync("blockdev", ["--flushbufs", this.volumeDevice]);
    return silentAt;
  }

  /**
   * Shuts down every filesystem the container has mounted from the data volume without flushing anything
   * (FS_IOC_SHUTDOWN, EXT4_GOING_FLAGS_NOLOGFLUSH): unflushed writes are gone, later writes fail. Reached
   * through /proc/<pid>/root, the container's own view of its mounts.
   */
  private shutdownDataFilesystem(): void {
    const init = this.initPid();
    if (init === undefined || !this.volumeDevice) return;
    const rdev = fs.statSync(this.volumeDevice).rdev;
    const device = `${Math.floor(rdev / 256) & 0xfff}:${(rdev & 0xff) | ((rdev >> 12) & 0xfff00)}`;
    const mounts = readFileOr(`/proc/${init}/mountinfo`)
      .split("\n")
      .map((l) => l.split(" "))
      .filter((f) => f[2] === device)
      .map((f) => f[4]);
    for (const mountPoint of mounts) {
      const r = runSync("python3", ["-c", FS_SHUTDOWN_PY, `/proc/${init}/root${mountPoint}`]);
      fs.appendFileSync(
        path.join(this.dir, "events.log"),
        `${new Date().toISOString()} power loss: ${mountPoint} (${device}) shut down without flushing: ${r.code === 0 ? "ok" : r.stderr.trim()}\n`,
      );
      if (r.code !== 0) throw new Error(`[hostlab] ${this.name}: shutting down ${mountPoint}: ${r.stderr.trim()}`);
    }
  }

  async replace(opts: { blankVolume?: boolean; userData?: string } = {}): Promise<void> {
    await this.applyCut(DEAD_TABLE, "all");
    killHostSync(this.dir, this.netns);
    if (opts.userData !== undefined) this.userData = opts.userData;
    await this.prepareInstance();
    if (opts.blankVolume) await this.createVolume();
    await this.start();
  }

  // ---- inside the host

  exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    if (argv.length === 0) throw new Error("[hostlab] exec: empty argv");
    const init = this.initPid();
    if (init === undefined) {
      return Promise.resolve({ code: 125, stdout: "", stderr: `[hostlab] ${this.name} is not running\n` });
    }
    return run("nsenter", ["-t", String(init), "-a", "-r", "-w", "--", "env", "-i", ...envArgs(opts), ...argv], {
      input: opts.input,
      timeoutMs: opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
    });
  }

  async waitBooted(timeoutMs = 120_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      const r = await this.exec(["systemctl", "is-system-running", "--wait"], {
        timeoutMs: Math.max(1000, deadline - Date.now()),
      });
      last = r.stdout.trim() || r.stderr.trim();
      if (last === "running" || last === "degraded") return last;
      await sleep(200);
    }
    return last;
  }

  async waitCloudInit(timeoutMs = 600_000): Promise<CloudInitResult> {
    const deadline = Date.now() + timeoutMs;
    let r: ExecResult = { code: 125, stdout: "", stderr: "" };
    // Retried while the host is (re)booting: exec fails until its systemd runs.
    while (Date.now() < deadline) {
      r = await this.exec(["cloud-init", "status", "--wait", "--long"], {
        timeoutMs: Math.max(1000, deadline - Date.now()),
      });
      if (r.code !== 125 && /^status:/m.test(r.stdout)) break;
      await sleep(200);
    }
    const status = /^status:\s*(.*)$/m.exec(r.stdout)?.[1]?.trim() ?? "unknown";
    const out = await this.exec(["cat", "/var/log/cloud-init-output.log"], { timeoutMs: 30_000 });
    return { code: r.code, status, detail: r.stdout + r.stderr, output: out.stdout };
  }

  teardownSync(): void {
    killHostSync(this.dir, this.netns);
    for (const m of mountsUnder(this.dir)) {
      if (runSync("umount", [m]).code !== 0) runSync("umount", ["-l", m]);
    }
    this.detachVolume();
  }
}

/** systemd-nspawn keeps state in /run/systemd/nspawn and refuses to run unless it is a tmpfs. */
function ensureNspawnRunDir(): void {
  if (mountsUnder(NSPAWN_RUN_DIR).includes(NSPAWN_RUN_DIR)) return;
  fs.mkdirSync(NSPAWN_RUN_DIR, { recursive: true });
  const r = runSync("mount", ["-t", "tmpfs", "-o", "mode=0755", "tmpfs", NSPAWN_RUN_DIR]);
  if (r.code !== 0) throw new Error(`[hostlab] mounting a tmpfs on ${NSPAWN_RUN_DIR}: ${r.stderr}`);
}

// ------------------------------------------------------------------ the lab

export class HostLab {
  readonly id: string;
  readonly dir: string;
  readonly bridge: string;
  readonly cidrPrefix: number;
  readonly endpointIp: string;
  readonly region: string;
  readonly extraEndpointNames: string[];
  readonly volumeMiB: number;
  readonly persistent: boolean;
  readonly rootfs: Rootfs;
  private readonly clientIp: string;
  private readonly hostList: HostImpl[] = [];
  private clientNode: NamespaceNode | undefined;
  private endpointNode: NamespaceNode | undefined;
  private destroyed = false;
  private readonly teardownHook: () => void;
  private loopChain: Promise<unknown> = Promise.resolve();

  private constructor(id: string, dir: string, opts: LabOptions, rootfs: Rootfs) {
    this.id = id;
    this.dir = dir;
    this.bridge = `${NS_PREFIX}${id}`;
    this.cidrPrefix = opts.cidrPrefix;
    this.endpointIp = opts.endpointIp;
    this.clientIp = opts.clientIp;
    this.region = opts.region ?? "us-east-1";
    this.extraEndpointNames = opts.extraEndpointNames ?? [];
    this.volumeMiB = opts.volumeMiB ?? 256;
    this.persistent = opts.persistent ?? false;
    this.rootfs = rootfs;
    this.teardownHook = () => this.destroySync();
  }

  static async create(specs: HostSpec[], opts: LabOptions): Promise<HostLab> {
    const can = canRunLab();
    if (!can.ok) throw new Error(`[hostlab] cannot run: ${can.reason}`);
    HostLab.validate(specs, opts);
    const baseDir = opts.baseDir ?? DEFAULT_LAB_BASE_DIR;
    sweepStaleLabs(baseDir);
    const rootfs = opts.rootfs ?? (await ensureRootfs({ log: opts.log }));

    fs.mkdirSync(baseDir, { recursive: true });
    const taken = new Set([...listNetns(), ...listLinks()].join("\n").match(new RegExp(ID_RE, "g")) ?? []);
    let id = "";
    let dir = "";
    for (let i = 0; i < 200 && !id; i++) {
      const candidate = `h${randomHex(2).slice(0, 3)}`;
      if (taken.has(candidate)) continue;
      try {
        fs.mkdirSync(path.join(baseDir, `${NS_PREFIX}-${candidate}`));
        id = candidate;
        dir = path.join(baseDir, `${NS_PREFIX}-${candidate}`);
      } catch {
        /* taken: try another */
      }
    }
    if (!id) throw new Error("[hostlab] no free lab id");
    const owner: OwnerInfo = opts.persistent
      ? { persistent: true }
      : { pid: process.pid, start: procStat(process.pid)?.[19] ?? "" };
    fs.writeFileSync(path.join(dir, "owner.json"), JSON.stringify(owner));

    const lab = new HostLab(id, dir, opts, rootfs);
    if (!lab.persistent) liveLabs().add(lab.teardownHook);
    try {
      await runOk("ip", ["link", "add", lab.bridge, "type", "bridge"]);
      await runOk("ip", ["link", "set", lab.bridge, "up"]);
      if (opts.gatewayIp) await runOk("ip", ["addr", "add", `${opts.gatewayIp}/${opts.cidrPrefix}`, "dev", lab.bridge]);
      specs.forEach((s, i) => lab.hostList.push(new HostImpl(lab, s, i)));
      lab.clientNode = new NamespaceNode(lab, "client", opts.clientIp, "c");
      lab.endpointNode = new NamespaceNode(lab, "aws", opts.endpointIp, "a");
      await lab.endpointNode.createNetwork([`${METADATA_IP}/32`]);
      await lab.clientNode.createNetwork();
      for (const h of lab.hostList) {
        await h.createNetwork();
        await h.prepareInstance();
        await h.createVolume();
      }
      lab.save();
      if (opts.start ?? true) await Promise.all(lab.hostList.map((h) => h.start()));
    } catch (e) {
      await lab.destroy();
      throw e;
    }
    return lab;
  }

  /**
   * Takes over a persistent lab made by another process (the local mode's next run): its hosts, network
   * and volumes as that process left them (lab.json, rewritten on every change).
   */
  static open(dir: string): HostLab {
    const file = path.join(dir, LAB_STATE_FILE);
    if (readOwner(dir)?.persistent !== true || !fs.existsSync(file))
      throw new Error(`[hostlab] ${dir} is not a persistent lab (no ${LAB_STATE_FILE})`);
    const saved = JSON.parse(fs.readFileSync(file, "utf8")) as SavedLab;
    const lab = new HostLab(saved.id, dir, saved.opts, saved.rootfs);
    for (const h of saved.hosts) {
      const host = new HostImpl(lab, h.spec, h.index);
      host.restore(h);
      lab.hostList.push(host);
    }
    lab.clientNode = new NamespaceNode(lab, "client", saved.opts.clientIp, "c");
    lab.endpointNode = new NamespaceNode(lab, "aws", saved.opts.endpointIp, "a");
    return lab;
  }

  /** A persistent lab records its hosts for HostLab.open (no secrets: user-data carries none). */
  save(): void {
    if (!this.persistent || this.destroyed) return;
    const state: SavedLab = {
      id: this.id,
      opts: {
        cidrPrefix: this.cidrPrefix,
        clientIp: this.clientIp,
        endpointIp: this.endpointIp,
        region: this.region,
        extraEndpointNames: this.extraEndpointNames,
        volumeMiB: this.volumeMiB,
        persistent: true,
      },
      rootfs: this.rootfs,
      hosts: this.hostList.map((h) => h.saved()),
    };
    const file = path.join(this.dir, LAB_STATE_FILE);
    fs.writeFileSync(`${file}.new`, JSON.stringify(state, null, 2), { mode: 0o600 });
    fs.renameSync(`${file}.new`, file);
  }

  private static validate(specs: HostSpec[], opts: LabOptions): void {
    if (!Number.isInteger(opts.cidrPrefix) || opts.cidrPrefix < 8 || opts.cidrPrefix > 30)
      throw new Error(`[hostlab] bad cidrPrefix ${opts.cidrPrefix}`);
    const names = new Set<string>(["client", "aws"]);
    const ips = new Set<number>();
    for (const ip of [opts.clientIp, opts.endpointIp, ...(opts.gatewayIp ? [opts.gatewayIp] : [])]) {
      if (ips.has(ipv4ToInt(ip))) throw new Error(`[hostlab] duplicate ip ${ip}`);
      ips.add(ipv4ToInt(ip));
    }
    for (const s of specs) {
      if (!/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(s.name))
        throw new Error(`[hostlab] bad host name ${JSON.stringify(s.name)}`);
      if (names.has(s.name)) throw new Error(`[hostlab] duplicate host name ${s.name} ("client"/"aws" are reserved)`);
      names.add(s.name);
      if (ips.has(ipv4ToInt(s.ip))) throw new Error(`[hostlab] duplicate ip ${s.ip}`);
      ips.add(ipv4ToInt(s.ip));
      if (!/^vol-[0-9a-zA-Z]+$/.test(s.volumeId))
        throw new Error(`[hostlab] bad volumeId ${JSON.stringify(s.volumeId)} (expected vol-...)`);
    }
  }

  /** Serialize losetup -f calls within this process (they race for the same free device). */
  attachLoop(file: string): Promise<string> {
    const attempt = async (): Promise<string> => {
      let last = "";
      for (let i = 0; i < 5; i++) {
        const r = await run("losetup", ["-f", "--show", file], { timeoutMs: 30_000 });
        if (r.code === 0 && r.stdout.trim().startsWith("/dev/")) return r.stdout.trim();
        last = r.stderr.trim();
        await sleep(50 * (i + 1));
      }
      throw new Error(`[hostlab] losetup -f --show ${file}: ${last}`);
    };
    const p = this.loopChain.then(attempt, attempt);
    this.loopChain = p.catch(() => undefined);
    return p;
  }

  get hosts(): Host[] {
    return [...this.hostList];
  }

  host(name: string): Host {
    const h = this.hostList.find((x) => x.name === name);
    if (!h) throw new Error(`[hostlab] no host named ${name} (have: ${this.hostList.map((x) => x.name).join(", ")})`);
    return h;
  }

  /** The client namespace: runs this machine's own programs (redis-cli, node) on the lab's network. */
  get client(): LabNode {
    if (!this.clientNode) throw new Error("[hostlab] lab has no client");
    return this.clientNode;
  }

  /**
   * The AWS endpoint's namespace `rlab-<id>-aws` (endpointIp + 169.254.169.254/32 on its eth0): start the
   * endpoint (IMDS on 169.254.169.254:80, HTTPS AWS APIs and the mirror on endpointIp) inside it.
   */
  get endpoint(): LabNode {
    if (!this.endpointNode) throw new Error("[hostlab] lab has no endpoint namespace");
    return this.endpointNode;
  }

  /** A new host on the lab's bridge (a node added on day 2); not started. */
  async addHost(spec: HostSpec): Promise<Host> {
    if (this.hostList.some((h) => h.name === spec.name || h.ip === spec.ip))
      throw new Error(`[hostlab] a host named ${spec.name} or at ${spec.ip} exists already`);
    HostLab.validate([spec], { cidrPrefix: this.cidrPrefix, clientIp: "0.0.0.1", endpointIp: "0.0.0.2" });
    const index = Math.max(-1, ...this.hostList.map((h) => h.index)) + 1;
    const h = new HostImpl(this, spec, index);
    this.hostList.push(h);
    await h.createNetwork();
    await h.prepareInstance();
    await h.createVolume();
    return h;
  }

  /** Terminates a host for good (its instance and volume gone, like deleting them in EC2). */
  removeHost(name: string): void {
    const at = this.hostList.findIndex((h) => h.name === name);
    if (at < 0) throw new Error(`[hostlab] no host named ${name}`);
    this.hostList[at].teardownSync();
    this.hostList.splice(at, 1);
    this.save();
  }

  /** Idempotent, best effort, never throws. */
  async destroy(): Promise<void> {
    try {
      this.destroySync();
    } catch {
      /* never throws */
    }
  }

  private destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    liveLabs().delete(this.teardownHook);
    for (const h of this.hostList) {
      try {
        h.teardownSync();
      } catch {
        /* best effort */
      }
    }
    removeLabSync(this.id, this.dir);
  }
}
