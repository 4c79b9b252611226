/**
 * HostLab: simulated EC2 hosts on one Linux machine, so that a real EC2
 * user-data script can run on each "host", as root, unmodified.
 *
 * Every host is:
 *  - a network namespace `rlab-<id>-<name>` whose `eth0` is a veth into one
 *    bridge `rlab<id>` (no address on the bridge: the test machine itself has
 *    no route into the lab; use `lab.client` to talk to the hosts);
 *  - a long-lived holder (`unshare --mount --uts --ipc --pid --fork`, a bash
 *    loop that is PID 1 of the host's pid namespace and reaps orphans) whose
 *    private mount namespace holds:
 *      overlays (lower = the real dir, upper under the lab dir) on /etc, /var,
 *        /usr/local, /root, /opt, /srv, /home: the script may write anywhere
 *        there (incl. `sed -i /etc/fstab`) without touching the real machine;
 *      /var/lib/redis and /var/log: fresh empty dirs inside the /var overlay
 *        (same owner/mode as on the real machine, /var/log/redis kept) that
 *        are NOT mountpoints, exactly like on a fresh instance;
 *      private dirs (under the lab dir) bound on /run and /tmp;
 *      a private /dev (tmpfs): null, zero, full, random, urandom, tty, pts,
 *        shm, fd, /dev/log (a syslog sink writing /var/log/syslog), the host's
 *        own loop device only, and
 *        /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_<volid without dash>
 *        -> ../../loopN, as AWS Nitro exposes an EBS volume;
 *      hostname = host name; a private /proc (own pid namespace).
 *  - an EC2 instance metadata service on 169.254.169.254:80 (IMDSv1+v2;
 *    instance-id, placement/availability-zone, placement/region, local-ipv4,
 *    hostname, instance-type, instance identity document).
 *  - stand-ins for `systemctl`, `apt-get` and `aws` first on PATH
 *    (/run/host-lab/bin, copied from ./bin); everything else runs for real.
 *    systemctl keeps its state in /run/fake-systemd: <unit>.service.pid holds
 *    "PID STARTTIME" of the main process, <unit>.service.state the state;
 *    service output goes to /var/log/fake-systemd-<unit without .service>.log.
 *    apt-get only logs to /var/log/fake-apt.log. aws serves the lab's SSM
 *    parameters from /run/host-lab/ssm (root-only).
 *
 * Global kernel settings (vm.*, /sys/kernel/mm/transparent_hugepage/*) are
 * NOT namespaced: a script that writes them changes the test machine.
 */
import { spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as vm from "vm";

// ------------------------------------------------------------------ public API

export interface HostSpec {
  /** Host name (also the hostname inside the host): [A-Za-z0-9-], max 63. */
  name: string;
  /** IPv4 address of eth0 (prefix length from LabOptions.cidrPrefix). */
  ip: string;
  /** Availability zone, e.g. "us-east-1a" (served by IMDS). */
  az: string;
  /** EBS volume id, e.g. "vol-0abc123": the by-id link is named after it. */
  dataVolumeId: string;
  /** Served by IMDS at meta-data/instance-type. Default "m6i.large". */
  instanceType?: string;
}

export interface LabOptions {
  /** Prefix length of every address, e.g. 24. */
  cidrPrefix: number;
  /** Address of the extra "client" namespace (lab.client). */
  clientIp: string;
  /** SSM parameters served by the aws stand-in, as SecureString. */
  ssmParameters: Record<string, string>;
  /** SSM parameters served as Type String (returned as-is without --with-decryption). */
  ssmStringParameters?: Record<string, string>;
  /** Size of each blank data volume. Default 128. */
  dataVolumeMiB?: number;
  /** Run the instance metadata service in every host. Default true. */
  imds?: boolean;
  /**
   * Outlive this process: no teardown on exit, never swept as stale; removed only by
   * destroyPersistentLabs() (the local mode's `down`). Default false.
   */
  persistent?: boolean;
  /** An address for this machine itself on the lab's bridge, so its own programs reach the hosts. */
  gatewayIp?: string;
  /** IMDS rejects requests without a session token (HttpTokens=required). Default false. */
  imdsTokensRequired?: boolean;
}

export interface ExecOptions {
  env?: Record<string, string>;
  input?: string;
  /** Default 120000. On expiry the command's process group is killed and code is 124. */
  timeoutMs?: number;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A namespace of the lab you can run commands in (a host, or the client). */
export interface LabNode {
  readonly name: string;
  readonly ip: string;
  /** The node's private state dir on the real filesystem (for debugging). */
  readonly root: string;
  /** Run argv inside the node's namespaces, as root, cwd /, with a clean env. */
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** bash -c script inside the node. */
  sh(script: string, opts?: ExecOptions): Promise<ExecResult>;
  /** Cut the node's link (bridge side of the veth down): a network partition. */
  networkDown(): Promise<void>;
  networkUp(): Promise<void>;
}

export interface Host extends LabNode {
  readonly az: string;
  readonly dataVolumeId: string;
  /** Current EC2 instance id (changes on replaceDataVolume: a new instance). */
  readonly instanceId: string;
  /** Current loop device backing the data volume, e.g. "/dev/loop3". */
  readonly dataDevice: string;
  /** /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_<volid without dash> */
  readonly byIdPath: string;
  /**
   * Write the script to /var/lib/cloud/instance/scripts/part-001 (mode 0700)
   * and run it like cloud-init: as root, cwd /, stdin /dev/null; executed
   * directly when it starts with "#!" (so "#!/bin/bash -ex" is honoured),
   * otherwise with bash. Environment like cloud-final.service: PATH (stand-ins
   * first) and LANG only -- HOME/USER/SHELL are NOT set, as on EC2 -- plus
   * opts.env. Output is also appended to /var/log/cloud-init-output.log.
   * Default timeout 600000 ms.
   */
  runUserData(script: string, opts?: { timeoutMs?: number; env?: Record<string, string> }): Promise<ExecResult>;
  /** Kill every process started through the systemctl stand-in (whole process groups). Default KILL. */
  killAll(signal?: "KILL" | "TERM"): Promise<void>;
  /**
   * Replace the instance: kill every process of the host (so nothing stays
   * mounted), wipe all its private state (/etc, /var, /run, /var/log, /tmp,
   * ... overlays and dirs: a brand-new instance from the same AMI), give it a
   * brand-new BLANK loop device under the same volume id and a new instance id.
   * The IP, name and AZ stay.
   */
  replaceDataVolume(): Promise<void>;
}

// ------------------------------------------------------------------ constants

const LAB_PREFIX = "rlab";
const STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const IN_HOST_LAB_DIR = "/run/host-lab";
const IN_HOST_BIN = `${IN_HOST_LAB_DIR}/bin`;
const IN_HOST_SSM = `${IN_HOST_LAB_DIR}/ssm`;
const STAND_INS = ["systemctl", "apt-get", "aws"];
const STAND_IN_SRC = path.join(__dirname, "bin");
const LAB_BASE_DIR = "/tmp";
const OVERLAY_DIRS: Array<[string, string]> = [
  ["/etc", "etc"],
  ["/var", "var"],
  ["/usr/local", "usr-local"],
  ["/root", "root"],
  ["/opt", "opt"],
  ["/srv", "srv"],
  ["/home", "home"],
];
const IMDS_ADDR = "169.254.169.254";
const DEFAULT_EXEC_TIMEOUT_MS = 120_000;
const DEFAULT_USERDATA_TIMEOUT_MS = 600_000;

// ------------------------------------------------------------------ process helpers

function signalNumber(sig: NodeJS.Signals | null): number {
  if (!sig) return 0;
  const n = (os.constants.signals as Record<string, number | undefined>)[sig];
  return n ?? 0;
}

interface RunOptions {
  input?: string;
  timeoutMs?: number;
}

/**
 * Run a command (in its own process group) and collect its output. Never
 * rejects. Resolves shortly after the process exits even if a daemon it left
 * behind still holds stdout/stderr open.
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
    // stdin is /dev/null or a regular (already unlinked) file holding the input,
    // never node's default socketpair: bash sources ~/.bashrc when its stdin is
    // a socket ("run by sshd" detection), which would rewrite PATH.
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
        if (child.pid) {
          try {
            process.kill(-child.pid, "SIGKILL");
          } catch {
            /* already gone */
          }
        }
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
  if (!f) return false;
  if (f[0] === "Z" || f[0] === "X") return false;
  return startTime === undefined || f[19] === startTime;
}

function killPid(pid: number, sig: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
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

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// ------------------------------------------------------------------ exit-time cleanup registry

/** The real process object (jest hands test modules a copy whose events never fire). */
const realProcess = vm.runInThisContext("process") as NodeJS.Process;
const REGISTRY_KEY = Symbol.for("hostlab.liveLabs.v1");

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

function ownerIdentity(): { pid: number; start: string } {
  return { pid: process.pid, start: procStat(process.pid)?.[19] ?? "" };
}

// ------------------------------------------------------------------ environment checks

function commandExists(cmd: string): boolean {
  return runSync("bash", ["-c", `command -v ${shQuote(cmd)} >/dev/null`]).code === 0;
}

let canRunCache: { ok: true } | { ok: false; reason: string } | undefined;

/** Can this machine run a HostLab? (Linux, root, iproute2/util-linux tools, overlayfs, loop devices, redis-server.) */
export function canRunLab(): { ok: true } | { ok: false; reason: string } {
  if (canRunCache) return canRunCache;
  const check = (): { ok: true } | { ok: false; reason: string } => {
    if (process.platform !== "linux")
      return { ok: false, reason: `HostLab needs Linux (platform is ${process.platform})` };
    if (typeof process.getuid !== "function" || process.getuid() !== 0)
      return { ok: false, reason: "HostLab needs root (network namespaces, mounts, loop devices)" };
    const needed = [
      "ip",
      "unshare",
      "nsenter",
      "losetup",
      "mount",
      "umount",
      "setpriv",
      "setsid",
      "perl",
      "bash",
      "mknod",
      "redis-server",
      "redis-cli",
    ];
    const missing = needed.filter((c) => !commandExists(c));
    if (missing.length > 0) return { ok: false, reason: `HostLab needs these commands: ${missing.join(", ")}` };
    if (!fs.existsSync("/dev/loop-control"))
      return { ok: false, reason: "HostLab needs loop devices (/dev/loop-control missing)" };
    let filesystems = "";
    try {
      filesystems = fs.readFileSync("/proc/filesystems", "utf8");
    } catch {
      /* ignore */
    }
    if (!/\boverlay\b/.test(filesystems))
      return { ok: false, reason: "HostLab needs overlayfs (not in /proc/filesystems)" };
    const fsType = runSync("stat", ["-f", "-c", "%T", LAB_BASE_DIR]).stdout.trim();
    if (fsType === "overlayfs")
      return {
        ok: false,
        reason: `${LAB_BASE_DIR} is on overlayfs, which cannot hold overlay upper dirs (mount a tmpfs on ${LAB_BASE_DIR})`,
      };
    for (const s of STAND_INS) {
      try {
        fs.accessSync(path.join(STAND_IN_SRC, s), fs.constants.X_OK);
      } catch {
        return { ok: false, reason: `stand-in ${path.join(STAND_IN_SRC, s)} missing or not executable` };
      }
    }
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
 * describe() when the lab can run. Otherwise: with CI=true a failing test
 * carrying the reason; else a logged reason and describe.skip.
 */
export function describeLab(name: string, fn: () => void): void {
  const can = canRunLab();
  if (can.ok) {
    describe(name, fn);
    return;
  }
  if (process.env.CI === "true") {
    describe(name, () => {
      test("HostLab can run on this machine", () => {
        throw new Error(`HostLab cannot run here (CI=true, so this fails instead of skipping): ${can.reason}`);
      });
    });
    return;
  }
  console.log(`Skipping "${name}": ${can.reason}`);
  describe.skip(name, fn);
}

// ------------------------------------------------------------------ stale lab sweeping

interface LoopInfo {
  name: string;
  backFile: string;
}

function listLoops(): LoopInfo[] {
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

function labIdOfDir(dirName: string): string | undefined {
  return new RegExp(`^${LAB_PREFIX}-([0-9a-f]{4})-`).exec(dirName)?.[1];
}

function ownerAlive(labDir: string): boolean {
  try {
    const o = JSON.parse(fs.readFileSync(path.join(labDir, "owner.json"), "utf8")) as {
      pid?: unknown;
      start?: unknown;
      persistent?: unknown;
    };
    if (o.persistent === true) return true;
    if (typeof o.pid !== "number" || typeof o.start !== "string") return false;
    return processAlive(o.pid, o.start);
  } catch {
    return false;
  }
}

/** Remove everything left by one lab id: processes, netns, links, loop devices, dirs. */
function removeLabResourcesSync(id: string, labDirs: string[]): void {
  const nsRe = new RegExp(`^${LAB_PREFIX}-${id}-`);
  const namespaces = listNetns().filter((n) => nsRe.test(n));
  for (const ns of namespaces) killNetnsSync(ns);
  const dirMarker = `/${LAB_PREFIX}-${id}-`;
  for (const loop of listLoops()) {
    if (loop.backFile.includes(dirMarker)) runSync("losetup", ["-d", loop.name]);
  }
  for (const ns of namespaces) runSync("ip", ["netns", "del", ns]);
  const linkRe = new RegExp(`^(${LAB_PREFIX}${id}|rl${id}v\\d+)$`);
  for (const link of listLinks()) {
    if (linkRe.test(link)) runSync("ip", ["link", "del", link]);
  }
  for (let i = 0; i < 30; i++) {
    if (!listLoops().some((l) => l.backFile.includes(dirMarker))) break;
    sleepSync(100);
  }
  for (const d of labDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

/** Every lab's state dir under LAB_BASE_DIR, with its id. */
function labDirsOnDisk(): { id: string; full: string }[] {
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(LAB_BASE_DIR);
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const id = labIdOfDir(e);
    return id ? [{ id, full: path.join(LAB_BASE_DIR, e) }] : [];
  });
}

function sweepStaleLabsSync(): string[] {
  const swept: string[] = [];
  const liveIds = new Set<string>();
  const staleDirs = new Map<string, string[]>();
  for (const { id, full } of labDirsOnDisk()) {
    if (ownerAlive(full)) liveIds.add(id);
    else staleDirs.set(id, [...(staleDirs.get(id) ?? []), full]);
  }
  const ids = new Set<string>(staleDirs.keys());
  const nsRe = new RegExp(`^${LAB_PREFIX}-([0-9a-f]{4})-`);
  for (const ns of listNetns()) {
    const id = nsRe.exec(ns)?.[1];
    if (id) ids.add(id);
  }
  const brRe = new RegExp(`^(?:${LAB_PREFIX}([0-9a-f]{4})|rl([0-9a-f]{4})v\\d+)$`);
  for (const link of listLinks()) {
    const m = brRe.exec(link);
    const id = m?.[1] ?? m?.[2];
    if (id) ids.add(id);
  }
  const loopRe = new RegExp(`/${LAB_PREFIX}-([0-9a-f]{4})-`);
  for (const l of listLoops()) {
    const id = loopRe.exec(l.backFile)?.[1];
    if (id) ids.add(id);
  }
  for (const id of ids) {
    if (liveIds.has(id)) continue;
    removeLabResourcesSync(id, staleDirs.get(id) ?? []);
    swept.push(id);
  }
  return swept;
}

/** Removes every persistent lab (see LabOptions.persistent). Returns the removed lab ids. */
export function destroyPersistentLabs(): string[] {
  const removed: string[] = [];
  for (const { id, full } of labDirsOnDisk()) {
    try {
      const o = JSON.parse(fs.readFileSync(path.join(full, "owner.json"), "utf8")) as { persistent?: unknown };
      if (o.persistent !== true) continue;
    } catch {
      continue;
    }
    removeLabResourcesSync(id, [full]);
    removed.push(id);
  }
  return removed;
}

/**
 * Remove leftovers of earlier crashed runs (namespaces, bridges, veths, loop
 * devices and dirs of labs whose owning process is gone). Labs of live
 * processes (e.g. a parallel jest worker) are left alone. Returns the swept lab ids.
 */
export async function sweepStaleLabs(): Promise<string[]> {
  return sweepStaleLabsSync();
}

// ------------------------------------------------------------------ in-node scripts

/** The project root, kept visible inside nodes if it lives under /tmp (which nodes get privately). */
const PROJECT_ROOT = path.resolve(__dirname, "../..");
const KEEP_VISIBLE = PROJECT_ROOT.startsWith(`${LAB_BASE_DIR}/`) ? [PROJECT_ROOT] : [];

/** PID 1 of every node's pid namespace: sleeps, and reaps orphans (bash reaps any child on SIGCHLD). */
const REAPER = 'trap "" TERM INT HUP; while :; do sleep 3600 & wait $!; done';

/** Runs inside the node (fresh mount ns). $1 = node state dir, $2 = hostname, $3 = 1 for syslog sink. */
const SETUP_SCRIPT = String.raw`
set -euo pipefail
R=$1
hostname "$2"
ov() {
  local dir=$1 key=$2
  [[ -d $dir && ! -L $dir ]] || return 0
  mkdir -p "$R/ov/$key/upper" "$R/ov/$key/work"
  mount -t overlay "hostlab-$key" -o "lowerdir=$dir,upperdir=$R/ov/$key/upper,workdir=$R/ov/$key/work" "$dir"
}
${OVERLAY_DIRS.map(([d, k]) => `ov ${d} ${k}`).join("\n")}
# /var/log and /var/lib/redis: fresh empty dirs (opaque in the /var overlay),
# same owner/mode as on the real machine; NOT mountpoints, as on a real instance.
fresh() {
  local d=$1 mode owner
  mode=$(stat -c %a -- "$d" 2>/dev/null || echo "$2")
  owner=$(stat -c %u:%g -- "$d" 2>/dev/null || echo 0:0)
  rm -rf -- "$d"
  mkdir -p -- "$d"
  chmod "$mode" "$d"
  chown "$owner" "$d"
}
redis_log=$(stat -c '%a %u:%g' /var/log/redis 2>/dev/null || true)
fresh /var/log 755
if [[ -n $redis_log ]]; then
  read -r rl_mode rl_owner <<<"$redis_log"
  mkdir /var/log/redis
  chmod "$rl_mode" /var/log/redis
  chown "$rl_owner" /var/log/redis
fi
fresh /var/lib/redis 755
mount --bind "$R/run" /run
# Directories under the real /tmp that must stay visible in the node (the project itself, when it is
# checked out under /tmp: its scripts and node_modules run inside nodes).
${KEEP_VISIBLE.map((d) => `mkdir -p "$R/tmp${d.slice(LAB_BASE_DIR.length)}"\nmount --bind '${d}' "$R/tmp${d.slice(LAB_BASE_DIR.length)}"`).join("\n")}
# Last use of $R: the lab dir lives under the real /tmp.
mount --rbind "$R/tmp" /tmp
mount -t tmpfs -o mode=0755,size=8m,nosuid hostlab-dev /dev
cd /dev
mknod -m 666 null c 1 3
mknod -m 666 zero c 1 5
mknod -m 666 full c 1 7
mknod -m 666 random c 1 8
mknod -m 666 urandom c 1 9
mknod -m 666 tty c 5 0
mkdir -m 0755 pts
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 hostlab-devpts /dev/pts
ln -s pts/ptmx ptmx
mkdir -m 1777 shm
mount -t tmpfs -o mode=1777,nosuid,nodev hostlab-shm /dev/shm
ln -s /proc/self/fd fd
ln -s /proc/self/fd/0 stdin
ln -s /proc/self/fd/1 stdout
ln -s /proc/self/fd/2 stderr
mkdir -p disk/by-id
cd /
if [[ $3 == 1 ]]; then
  setsid perl -e '
    use strict; use warnings; use Socket; use IO::Socket::UNIX;
    unlink "/dev/log";
    my $s = IO::Socket::UNIX->new(Type => SOCK_DGRAM(), Local => "/dev/log") or die "syslog: $!";
    chmod 0666, "/dev/log";
    open(my $out, ">>", "/var/log/syslog") or die "syslog: $!";
    $out->autoflush(1);
    while (1) { my $b = ""; defined($s->recv($b, 65536)) or next; $b =~ s/\n+\z//; print $out "$b\n"; }
  ' </dev/null >/dev/null 2>&1 &
  for _ in $(seq 200); do [[ -S /dev/log ]] && break; sleep 0.01; done
fi
`;

/** Runs inside a host: $1 = SIGNAL. Kills the process groups of systemctl-started services, waits for them. */
const KILL_ALL_SCRIPT = [
  "set -uo pipefail",
  "sig=$1",
  "shopt -s nullglob",
  "pids=()",
  "for f in /run/fake-systemd/*.pid; do",
  '  read -r pid start _ <"$f" || true',
  "  [[ -n ${pid:-} ]] || continue",
  '  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue',
  '  read -ra F <<<"${stat##*) }"',
  '  if [[ -n ${start:-} && ${F[19]} != "$start" ]]; then continue; fi',
  '  kill -s "$sig" -- "-${F[2]}" 2>/dev/null || true',
  '  kill -s "$sig" -- "$pid" 2>/dev/null || true',
  '  pids+=("$pid")',
  "done",
  "for ((i = 0; i < 150; i++)); do",
  "  left=0",
  '  for p in "${pids[@]}"; do',
  '    st=$(cat "/proc/$p/stat" 2>/dev/null) || continue',
  '    read -ra F <<<"${st##*) }"',
  "    [[ ${F[0]} == Z ]] || left=1",
  "  done",
  "  ((left)) || exit 0",
  "  sleep 0.1",
  "done",
  'echo "processes still alive after signal $sig: ${pids[*]}" >&2',
  "exit 1",
].join("\n");

/** Runs inside a host: $1 = script path; runs it like cloud-init would. */
const USERDATA_SCRIPT = String.raw`
f=$1
cd /
if [[ $(head -c 2 -- "$f") == '#!' ]]; then
  exec "$f" </dev/null
else
  exec bash "$f" </dev/null
fi
`;

const IMDS_SERVER_JS = String.raw`
const http = require("http");
const crypto = require("crypto");
const md = JSON.parse(process.env.HOSTLAB_IMDS);
const tokens = new Map();
http.createServer((req, res) => {
  const send = (code, body, headers) => {
    res.writeHead(code, Object.assign({ "Content-Type": "text/plain", Server: "EC2ws" }, headers || {}));
    res.end(req.method === "HEAD" ? undefined : body);
  };
  const url = (req.url || "/").split("?")[0];
  if (req.method === "PUT" && url === "/latest/api/token") {
    const ttl = Number(req.headers["x-aws-ec2-metadata-token-ttl-seconds"]);
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) return send(400, "");
    const t = crypto.randomBytes(42).toString("base64");
    tokens.set(t, Date.now() + ttl * 1000);
    return send(200, t, { "X-Aws-Ec2-Metadata-Token-Ttl-Seconds": String(ttl) });
  }
  if (req.method !== "GET" && req.method !== "HEAD") return send(405, "");
  const tok = req.headers["x-aws-ec2-metadata-token"];
  if (typeof tok === "string") {
    const exp = tokens.get(tok);
    if (!exp || exp < Date.now()) return send(401, "");
  } else if (md.tokensRequired) {
    return send(401, "");
  }
  const key = url.length > 1 ? url.replace(/\/+$/, "") : url;
  if (Object.prototype.hasOwnProperty.call(md.paths, key)) return send(200, md.paths[key]);
  return send(404, "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<html><head><title>404 - Not Found</title></head><body><h1>404 - Not Found</h1></body></html>\n", { "Content-Type": "text/html" });
}).listen(80, "${IMDS_ADDR}");
`;

// ------------------------------------------------------------------ SSM rendering

interface SsmParam {
  value: string;
  type: "String" | "SecureString";
}

function fakeCiphertext(name: string, value: string): string {
  const h = crypto.createHash("sha512").update(`${name}\0${value}`).digest();
  return `AQICAHh${Buffer.concat([h, h]).toString("base64")}`;
}

function writeSsmDir(dir: string, params: Map<string, SsmParam>, region: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  fs.writeFileSync(path.join(dir, ".lab"), "hostlab ssm parameters\n", { mode: 0o600 });
  for (const [name, p] of params) {
    const hex = Buffer.from(name, "utf8").toString("hex");
    const enc = p.type === "SecureString" ? fakeCiphertext(name, p.value) : p.value;
    const arnName = name.startsWith("/") ? name.slice(1) : name;
    const doc = (value: string): string =>
      JSON.stringify(
        {
          Parameter: {
            Name: name,
            Type: p.type,
            Value: value,
            Version: 1,
            LastModifiedDate: "2024-01-01T00:00:00.000000+00:00",
            ARN: `arn:aws:ssm:${region}:123456789012:parameter/${arnName}`,
            DataType: "text",
          },
        },
        null,
        4,
      );
    const files: Record<string, string> = {
      type: p.type,
      text: p.value,
      "text-enc": enc,
      json: doc(p.value),
      "json-enc": doc(enc),
      vjson: JSON.stringify(p.value),
      "vjson-enc": JSON.stringify(enc),
    };
    for (const [suffix, content] of Object.entries(files)) {
      fs.writeFileSync(path.join(dir, `${hex}.${suffix}`), content, { mode: 0o600 });
    }
  }
}

// ------------------------------------------------------------------ nodes

function ipv4ToInt(ip: string): number {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    throw new Error(`[hostlab] not an IPv4 address: ${ip}`);
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

function randomHex(bytes: number): string {
  return crypto.randomBytes(bytes).toString("hex");
}

class LabNodeImpl implements LabNode {
  readonly root: string;
  readonly ns: string;
  readonly veth: string;
  protected holderPid = 0;
  protected initPid = 0;

  constructor(
    protected readonly lab: HostLab,
    readonly name: string,
    readonly ip: string,
    index: number,
  ) {
    this.root = path.join(lab.dir, "nodes", name);
    this.ns = `${LAB_PREFIX}-${lab.id}-${name}`;
    this.veth = `rl${lab.id}v${index}`;
  }

  protected pathDirs(): string {
    return STD_PATH;
  }

  protected withSyslog(): boolean {
    return false;
  }

  async createNetwork(): Promise<void> {
    await runOk("ip", ["netns", "add", this.ns]);
    await runOk("ip", ["link", "add", this.veth, "type", "veth", "peer", "name", "eth0", "netns", this.ns]);
    await runOk("ip", ["link", "set", this.veth, "master", this.lab.bridge]);
    await runOk("ip", ["link", "set", this.veth, "up"]);
    await runOk("ip", ["-n", this.ns, "link", "set", "lo", "up"]);
    await runOk("ip", ["-n", this.ns, "addr", "add", `${this.ip}/${this.lab.cidrPrefix}`, "dev", "eth0"]);
    await runOk("ip", ["-n", this.ns, "link", "set", "eth0", "up"]);
  }

  /** Fresh private state dirs (mode/owner like a fresh instance of the AMI). */
  protected prepareRoot(): void {
    for (const [, key] of OVERLAY_DIRS) {
      fs.mkdirSync(path.join(this.root, "ov", key, "upper"), { recursive: true });
      fs.mkdirSync(path.join(this.root, "ov", key, "work"), { recursive: true });
    }
    const run = path.join(this.root, "run");
    const tmp = path.join(this.root, "tmp");
    for (const d of [run, tmp]) fs.mkdirSync(d, { recursive: true });
    fs.chmodSync(run, 0o755);
    fs.chmodSync(tmp, 0o1777);
    const lock = path.join(run, "lock");
    fs.mkdirSync(lock, { recursive: true });
    fs.chmodSync(lock, 0o1777);
  }

  protected wipeRoot(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  /** Start the holder (new mount/uts/ipc/pid namespaces inside the netns) and set up the mounts. */
  async boot(): Promise<void> {
    fs.mkdirSync(this.root, { recursive: true });
    this.prepareRoot();
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        this.ns,
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--uts",
        "--ipc",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "bash",
        "-c",
        REAPER,
      ],
      { detached: true, stdio: "ignore" },
    );
    child.on("error", () => undefined);
    child.unref();
    if (!child.pid) throw new Error(`[hostlab] cannot start the holder of ${this.name}`);
    this.holderPid = child.pid;
    this.initPid = 0;
    for (let i = 0; i < 200 && this.initPid === 0; i++) {
      try {
        const kids = fs.readFileSync(`/proc/${this.holderPid}/task/${this.holderPid}/children`, "utf8").trim();
        const first = kids.split(/\s+/)[0];
        if (first && /^\d+$/.test(first)) {
          const status = fs.readFileSync(`/proc/${first}/status`, "utf8");
          if (/^NSpid:\s+\d+\s+1\s*$/m.test(status)) this.initPid = Number(first);
        }
      } catch {
        /* not yet */
      }
      if (this.initPid === 0) await sleep(10);
    }
    if (this.initPid === 0) throw new Error(`[hostlab] holder of ${this.name} did not start (pid ${this.holderPid})`);
    const r = await this.rawExec(
      ["bash", "-c", SETUP_SCRIPT, "hostlab-setup", this.root, this.name, this.withSyslog() ? "1" : "0"],
      { timeoutMs: 30_000 },
    );
    if (r.code !== 0) throw new Error(`[hostlab] setting up ${this.name} failed (${r.code}): ${r.stderr}`);
  }

  /** Kill every process of the node (its pid namespace) and wait until they are gone. */
  shutdownSync(): void {
    if (this.initPid) killPid(this.initPid);
    if (this.holderPid) killPid(this.holderPid);
    killNetnsSync(this.ns);
    this.initPid = 0;
    this.holderPid = 0;
  }

  protected nsenterArgs(): string[] {
    if (!this.initPid) throw new Error(`[hostlab] ${this.name} is not running`);
    return ["--target", String(this.initPid), "--mount", "--net", "--uts", "--ipc", "--pid", "--wd=/", "--"];
  }

  protected async rawExec(argv: string[], opts: RunOptions): Promise<ExecResult> {
    return run("nsenter", [...this.nsenterArgs(), ...argv], opts);
  }

  /** Run argv with exactly baseEnv + opts.env (env -i). */
  protected async execWithEnv(argv: string[], baseEnv: Record<string, string>, opts: ExecOptions): Promise<ExecResult> {
    if (argv.length === 0) throw new Error("[hostlab] exec: empty argv");
    const env: Record<string, string> = { ...baseEnv, ...(opts.env ?? {}) };
    const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    return this.rawExec(["env", "-i", "--", ...envArgs, ...argv], {
      input: opts.input,
      timeoutMs: opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
    });
  }

  exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.execWithEnv(
      argv,
      { PATH: this.pathDirs(), HOME: "/root", USER: "root", LOGNAME: "root", SHELL: "/bin/bash", LANG: "C.UTF-8" },
      opts,
    );
  }

  sh(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(["bash", "-c", script], opts);
  }

  async networkDown(): Promise<void> {
    await runOk("ip", ["link", "set", this.veth, "down"]);
  }

  async networkUp(): Promise<void> {
    await runOk("ip", ["link", "set", this.veth, "up"]);
  }
}

class HostImpl extends LabNodeImpl implements Host {
  readonly az: string;
  readonly dataVolumeId: string;
  readonly byIdPath: string;
  instanceId = "";
  dataDevice = "";
  private imageFile = "";
  private generation = 0;

  constructor(
    lab: HostLab,
    private readonly spec: HostSpec,
    index: number,
  ) {
    super(lab, spec.name, spec.ip, index);
    this.az = spec.az;
    this.dataVolumeId = spec.dataVolumeId;
    this.byIdPath = `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${spec.dataVolumeId.replace("-", "")}`;
  }

  protected override pathDirs(): string {
    return `${IN_HOST_BIN}:${STD_PATH}`;
  }

  protected override withSyslog(): boolean {
    return true;
  }

  get region(): string {
    return this.az.replace(/[a-z]$/, "");
  }

  protected override prepareRoot(): void {
    super.prepareRoot();
    const bin = path.join(this.root, "run", IN_HOST_BIN.replace("/run/", ""));
    fs.mkdirSync(bin, { recursive: true });
    for (const s of STAND_INS) {
      const dst = path.join(bin, s);
      fs.copyFileSync(path.join(STAND_IN_SRC, s), dst);
      fs.chmodSync(dst, 0o755);
    }
    this.writeSsm();
  }

  writeSsm(): void {
    writeSsmDir(path.join(this.root, "run", IN_HOST_SSM.replace("/run/", "")), this.lab.ssm, this.region);
  }

  async createVolume(): Promise<void> {
    this.generation++;
    const volDir = path.join(this.lab.dir, "volumes");
    fs.mkdirSync(volDir, { recursive: true });
    this.imageFile = path.join(volDir, `${this.dataVolumeId}-${this.generation}.img`);
    const fd = fs.openSync(this.imageFile, "w", 0o600);
    fs.ftruncateSync(fd, this.lab.dataVolumeMiB * 1024 * 1024);
    fs.closeSync(fd);
    this.dataDevice = await this.lab.attachLoop(this.imageFile);
  }

  private detachVolumeSync(): void {
    if (this.dataDevice) runSync("losetup", ["-d", this.dataDevice]);
    if (this.imageFile) {
      try {
        fs.rmSync(this.imageFile, { force: true });
      } catch {
        /* best effort */
      }
    }
    this.dataDevice = "";
    this.imageFile = "";
  }

  private async attachDeviceInside(): Promise<void> {
    const devName = path.basename(this.dataDevice);
    const majMin = fs.readFileSync(`/sys/class/block/${devName}/dev`, "utf8").trim().split(":");
    const link = path.basename(this.byIdPath);
    const script = `set -euo pipefail
mknod -m 0660 /dev/${devName} b ${majMin[0]} ${majMin[1]}
chgrp disk /dev/${devName} 2>/dev/null || true
ln -sfn ../../${devName} /dev/disk/by-id/${link}`;
    const r = await this.rawExec(["bash", "-c", script], { timeoutMs: 15_000 });
    if (r.code !== 0) throw new Error(`[hostlab] attaching ${this.dataDevice} in ${this.name} failed: ${r.stderr}`);
  }

  private imdsPaths(): Record<string, string> {
    const leaves: Record<string, string> = {};
    const md = "/latest/meta-data";
    const ipDashed = this.ip.replace(/\./g, "-");
    const dnsName = `ip-${ipDashed}.${this.region === "us-east-1" ? "ec2.internal" : `${this.region}.compute.internal`}`;
    leaves[`${md}/ami-id`] = "ami-0hostlab000000000";
    leaves[`${md}/instance-id`] = this.instanceId;
    leaves[`${md}/instance-type`] = this.spec.instanceType ?? "m6i.large";
    leaves[`${md}/local-ipv4`] = this.ip;
    leaves[`${md}/local-hostname`] = dnsName;
    leaves[`${md}/hostname`] = dnsName;
    leaves[`${md}/placement/availability-zone`] = this.az;
    leaves[`${md}/placement/region`] = this.region;
    leaves["/latest/dynamic/instance-identity/document"] = JSON.stringify(
      {
        accountId: "123456789012",
        architecture: "x86_64",
        availabilityZone: this.az,
        imageId: "ami-0hostlab000000000",
        instanceId: this.instanceId,
        instanceType: this.spec.instanceType ?? "m6i.large",
        privateIp: this.ip,
        region: this.region,
        version: "2017-09-30",
      },
      null,
      2,
    );
    const dirs = new Map<string, Set<string>>();
    for (const leaf of Object.keys(leaves)) {
      const parts = leaf.split("/").filter((p) => p !== "");
      for (let i = 0; i < parts.length; i++) {
        const dir = i === 0 ? "/" : `/${parts.slice(0, i).join("/")}`;
        const entry = i === parts.length - 1 ? parts[i] : `${parts[i]}/`;
        if (!dirs.has(dir)) dirs.set(dir, new Set());
        dirs.get(dir)?.add(entry);
      }
    }
    const paths: Record<string, string> = { ...leaves };
    for (const [dir, entries] of dirs) paths[dir] = [...entries].sort().join("\n");
    return paths;
  }

  private async startImds(): Promise<void> {
    if (this.lab.imds === false) return;
    const payload = JSON.stringify({ tokensRequired: this.lab.imdsTokensRequired, paths: this.imdsPaths() });
    const script = `set -uo pipefail
setsid env -i HOSTLAB_IMDS=${shQuote(payload)} ${shQuote(process.execPath)} -e ${shQuote(IMDS_SERVER_JS)} </dev/null >>/run/host-lab/imds.log 2>&1 &
for _ in $(seq 500); do
  if (exec 3<>/dev/tcp/${IMDS_ADDR}/80) 2>/dev/null; then exit 0; fi
  sleep 0.02
done
echo "IMDS did not start:" >&2; cat /run/host-lab/imds.log >&2; exit 1`;
    const r = await this.rawExec(["bash", "-c", script], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`[hostlab] IMDS in ${this.name}: ${r.stderr}`);
  }

  override async createNetwork(): Promise<void> {
    await super.createNetwork();
    if (this.lab.imds !== false) await runOk("ip", ["-n", this.ns, "addr", "add", `${IMDS_ADDR}/32`, "dev", "lo"]);
  }

  override async boot(): Promise<void> {
    this.instanceId = `i-0${randomHex(8)}`;
    await super.boot();
    await this.attachDeviceInside();
    await this.startImds();
  }

  runUserData(script: string, opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<ExecResult> {
    return (async () => {
      const dir = `/var/lib/cloud/instances/${this.instanceId}/scripts`;
      const file = `${dir}/part-001`;
      const w = await this.exec(
        [
          "bash",
          "-c",
          `set -e; mkdir -p ${dir}; ln -sfn ${path.dirname(dir)} /var/lib/cloud/instance; umask 077; cat > ${file}; chmod 0700 ${file}`,
        ],
        { input: script, timeoutMs: 30_000 },
      );
      if (w.code !== 0) throw new Error(`[hostlab] writing user-data into ${this.name} failed: ${w.stderr}`);
      // cloud-final.service is a systemd service without User=: PATH and LANG, but no HOME/USER/SHELL.
      const r = await this.execWithEnv(
        ["bash", "-c", USERDATA_SCRIPT, "cloud-init", "/var/lib/cloud/instance/scripts/part-001"],
        { PATH: this.pathDirs(), LANG: "C.UTF-8" },
        {
          env: opts.env,
          timeoutMs: opts.timeoutMs ?? DEFAULT_USERDATA_TIMEOUT_MS,
        },
      );
      await this.exec(["bash", "-c", "cat >> /var/log/cloud-init-output.log"], {
        input: r.stdout + r.stderr,
        timeoutMs: 30_000,
      });
      return r;
    })();
  }

  async killAll(signal: "KILL" | "TERM" = "KILL"): Promise<void> {
    const r = await this.rawExec(["bash", "-c", KILL_ALL_SCRIPT, "hostlab-killall", signal], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`[hostlab] killAll(${signal}) in ${this.name}: ${r.stderr}`);
  }

  async replaceDataVolume(): Promise<void> {
    this.shutdownSync();
    this.detachVolumeSync();
    this.wipeRoot();
    await this.createVolume();
    await this.boot();
  }

  teardownSync(): void {
    this.shutdownSync();
    this.detachVolumeSync();
  }
}

class ClientImpl extends LabNodeImpl {
  teardownSync(): void {
    this.shutdownSync();
  }
}

// ------------------------------------------------------------------ the lab

export class HostLab {
  readonly id: string;
  readonly dir: string;
  readonly bridge: string;
  readonly cidrPrefix: number;
  readonly dataVolumeMiB: number;
  readonly imds: boolean;
  readonly imdsTokensRequired: boolean;
  /** SSM parameters currently served (name -> value/type). */
  readonly ssm = new Map<string, SsmParam>();
  private readonly hostList: HostImpl[] = [];
  private clientNode: ClientImpl | undefined;
  private destroyed = false;
  private readonly teardownHook: () => void;
  private loopChain: Promise<unknown> = Promise.resolve();

  private constructor(id: string, dir: string, opts: LabOptions) {
    this.id = id;
    this.dir = dir;
    this.bridge = `${LAB_PREFIX}${id}`;
    this.cidrPrefix = opts.cidrPrefix;
    this.dataVolumeMiB = opts.dataVolumeMiB ?? 128;
    this.imds = opts.imds ?? true;
    this.imdsTokensRequired = opts.imdsTokensRequired ?? false;
    for (const [k, v] of Object.entries(opts.ssmParameters)) this.ssm.set(k, { value: v, type: "SecureString" });
    for (const [k, v] of Object.entries(opts.ssmStringParameters ?? {})) this.ssm.set(k, { value: v, type: "String" });
    this.teardownHook = () => this.destroySync();
  }

  static async create(specs: HostSpec[], opts: LabOptions): Promise<HostLab> {
    const can = canRunLab();
    if (!can.ok) throw new Error(`[hostlab] cannot run: ${can.reason}`);
    HostLab.validate(specs, opts);
    await sweepStaleLabs();

    const taken = new Set<string>([...listNetns(), ...listLinks()]);
    let id = "";
    for (let i = 0; i < 100; i++) {
      const candidate = randomHex(2);
      const used = [...taken].some(
        (n) => n.includes(`${LAB_PREFIX}${candidate}`) || n.includes(`${LAB_PREFIX}-${candidate}-`),
      );
      const dirUsed = fs.readdirSync(LAB_BASE_DIR).some((e) => e.startsWith(`${LAB_PREFIX}-${candidate}-`));
      if (!used && !dirUsed) {
        id = candidate;
        break;
      }
    }
    if (!id) throw new Error("[hostlab] no free lab id");
    const dir = fs.mkdtempSync(path.join(LAB_BASE_DIR, `${LAB_PREFIX}-${id}-`));
    fs.chmodSync(dir, 0o755);
    fs.writeFileSync(
      path.join(dir, "owner.json"),
      JSON.stringify(opts.persistent ? { persistent: true } : ownerIdentity()),
    );

    const lab = new HostLab(id, dir, opts);
    if (!opts.persistent) liveLabs().add(lab.teardownHook);
    try {
      await runOk("ip", ["link", "add", lab.bridge, "type", "bridge"]);
      await runOk("ip", ["link", "set", lab.bridge, "up"]);
      if (opts.gatewayIp) await runOk("ip", ["addr", "add", `${opts.gatewayIp}/${opts.cidrPrefix}`, "dev", lab.bridge]);
      specs.forEach((s, i) => lab.hostList.push(new HostImpl(lab, s, i)));
      lab.clientNode = new ClientImpl(lab, "client", opts.clientIp, specs.length);
      const nodes: LabNodeImpl[] = [...lab.hostList, lab.clientNode];
      await Promise.all(nodes.map((n) => n.createNetwork()));
      await Promise.all(lab.hostList.map((h) => h.createVolume()));
      await Promise.all(nodes.map((n) => n.boot()));
    } catch (e) {
      await lab.destroy();
      throw e;
    }
    return lab;
  }

  private static validate(specs: HostSpec[], opts: LabOptions): void {
    if (!Number.isInteger(opts.cidrPrefix) || opts.cidrPrefix < 8 || opts.cidrPrefix > 30)
      throw new Error(`[hostlab] bad cidrPrefix ${opts.cidrPrefix}`);
    const names = new Set<string>(["client"]);
    const ips = new Set<number>([ipv4ToInt(opts.clientIp)]);
    for (const s of specs) {
      if (!/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(s.name))
        throw new Error(`[hostlab] bad host name ${JSON.stringify(s.name)}`);
      if (names.has(s.name)) throw new Error(`[hostlab] duplicate host name ${s.name} ("client" is reserved)`);
      names.add(s.name);
      const ip = ipv4ToInt(s.ip);
      if (ips.has(ip)) throw new Error(`[hostlab] duplicate ip ${s.ip}`);
      ips.add(ip);
      if (!/^vol-[0-9a-zA-Z]+$/.test(s.dataVolumeId))
        throw new Error(`[hostlab] bad dataVolumeId ${JSON.stringify(s.dataVolumeId)} (expected vol-...)`);
      if (!/^[a-z]{2}-[a-z]+-\d[a-z]$/.test(s.az))
        throw new Error(`[hostlab] bad az ${JSON.stringify(s.az)} (expected e.g. us-east-1a)`);
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

  /** An extra namespace (no stand-ins on PATH, no data volume) for clients such as redis-cli. */
  get client(): LabNode {
    if (!this.clientNode) throw new Error("[hostlab] lab has no client");
    return this.clientNode;
  }

  host(name: string): Host {
    const h = this.hostList.find((x) => x.name === name);
    if (!h) throw new Error(`[hostlab] no host named ${name} (have: ${this.hostList.map((x) => x.name).join(", ")})`);
    return h;
  }

  /** Set (or with undefined, delete) an SSM parameter on every host, e.g. to test rotation. */
  setSsmParameter(name: string, value: string | undefined, type: "String" | "SecureString" = "SecureString"): void {
    if (value === undefined) this.ssm.delete(name);
    else this.ssm.set(name, { value, type });
    for (const h of this.hostList) h.writeSsm();
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
    const step = (f: () => void): void => {
      try {
        f();
      } catch {
        /* best effort */
      }
    };
    for (const h of this.hostList) step(() => h.teardownSync());
    if (this.clientNode) {
      const c = this.clientNode;
      step(() => c.teardownSync());
    }
    step(() => removeLabResourcesSync(this.id, [this.dir]));
  }
}
