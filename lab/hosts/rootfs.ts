/**
 * The HostLab's "AMI" and "Debian mirror": a Debian 12 root filesystem and a local apt repository,
 * built once per machine and cached.
 *
 * Why: the hosts of lab/hosts/hostLab.ts are real Debian 12 systems (systemd as PID 1, cloud-init running
 * the EC2 user-data, apt installing packages), so they need a root filesystem made like the EC2 AMI
 * (debootstrap + cloud-init & co. from the Debian archive, with the same suites as this machine, so the
 * packages match what the AMI would install) and, since the hosts have no internet, a mirror holding
 * the packages the user-data installs (MIRROR_PACKAGES with their whole dependency closure as resolved
 * against that rootfs). Building takes minutes, so it happens once: the result lives in
 * `<cacheDir>/rootfs-<hash>` where the hash covers the build script, the package lists, the mirrors and
 * the lab CA; changing any of them builds a new one. A file lock serializes builders (parallel jest
 * workers, the local mode), and the build script renames its temp dir into place only when complete.
 *
 * The rootfs trusts a lab CA (so awscli accepts the lab's AWS endpoint) and the mirror's signing key
 * (so apt verifies the mirror's InRelease exactly as it verifies deb.debian.org). Its only apt source is
 * `http://deb.debian.org/debian bookworm main`; every host resolves deb.debian.org to the lab's endpoint,
 * which serves `Rootfs.mirrorRoot` as its document root.
 */
import { spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { execFileSync } from "child_process";

/** Where built root filesystems and the generated lab CA are cached (outside the repository). */
export const DEFAULT_CACHE_DIR = "/var/cache/redis-stack-lab";
export const SUITE = "bookworm";
/** This machine's Debian archive and security archive (/etc/apt/sources.list.d/debian.sources). */
export const DEBIAN_MIRROR = "http://deb.debian.org/debian";
export const DEBIAN_SECURITY_MIRROR = "http://deb.debian.org/debian-security";
/** debootstrap --variant=minbase --include=... (cloud-init cannot go here: debootstrap fails on its virtual deps). */
export const DEBOOTSTRAP_INCLUDE: readonly string[] = [
  "systemd",
  "systemd-sysv",
  "dbus",
  "iproute2",
  "ca-certificates",
];
/** Installed into the rootfs with apt in a chroot: what a Debian cloud image has and the lab's hosts use. */
export const AMI_PACKAGES: readonly string[] = [
  "cloud-init",
  "cloud-guest-utils",
  "curl",
  "e2fsprogs",
  "udev",
  "procps",
  "less",
  "sudo",
  "apt-utils",
  "iputils-ping",
  "netbase",
  "locales",
  "openssh-server",
];
/** Packages the user-data installs: the local mirror holds them with their dependency closure. */
export const MIRROR_PACKAGES: readonly string[] = [
  "redis-server",
  "redis-tools",
  "awscli",
  "prometheus-redis-exporter",
];

const BUILD_SCRIPT = path.join(__dirname, "build-rootfs.sh");

export interface RootfsOptions {
  /** Default DEFAULT_CACHE_DIR. */
  cacheDir?: string;
  /** The lab CA (PEM) the hosts trust. Default: a CA generated once in `<cacheDir>/ca/` (see Rootfs.caKeyFile). */
  caCertPem?: string;
  /** Default MIRROR_PACKAGES. */
  mirrorPackages?: readonly string[];
  /** Default AMI_PACKAGES. */
  amiPackages?: readonly string[];
  /** Progress lines while building. Default: console.log. */
  log?: (line: string) => void;
  /** How long to wait for the build (and for another process's build). Default 30 min. */
  timeoutMs?: number;
}

export interface Rootfs {
  /** `<cacheDir>/rootfs-<hash>` */
  dir: string;
  /** The root filesystem: the read-only overlay lower dir of every host. Never write to it. */
  rootfs: string;
  /** Serve this dir as http://deb.debian.org/ (it holds debian/dists and debian/pool). */
  mirrorRoot: string;
  /** The mirror's public signing key (armored); the rootfs trusts it. */
  mirrorKeyFile: string;
  /** The lab CA certificate the rootfs trusts (PEM file). */
  caCertFile: string;
  /** The lab CA's private key, when the CA was generated here (not given by the caller). */
  caKeyFile?: string;
  /** `<package> <version>` lines of everything installed in the rootfs. */
  manifestFile: string;
  hash: string;
  /** True when this call built it (false: it was cached). */
  built: boolean;
  /** Wall time of this call. */
  seconds: number;
}

/** The lab CA generated once per cache dir (atomically: a temp dir renamed into place). */
export function ensureLabCa(cacheDir = DEFAULT_CACHE_DIR): { certFile: string; keyFile: string } {
  const dir = path.join(cacheDir, "ca");
  const certFile = path.join(dir, "ca.crt");
  const keyFile = path.join(dir, "ca.key");
  if (fs.existsSync(certFile)) return { certFile, keyFile };
  fs.mkdirSync(cacheDir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(cacheDir, "ca.tmp-"));
  try {
    const openssl = (args: string[]): void => {
      execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
    };
    openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path.join(tmp, "ca.key")]);
    openssl([
      "req",
      "-x509",
      "-new",
      "-key",
      path.join(tmp, "ca.key"),
      "-subj",
      "/O=redis-stack/CN=redis-stack HostLab CA",
      "-days",
      "3650",
      "-out",
      path.join(tmp, "ca.crt"),
    ]);
    fs.chmodSync(path.join(tmp, "ca.key"), 0o600);
    try {
      fs.renameSync(tmp, dir);
    } catch {
      // Another process won the race: use its CA.
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { certFile, keyFile };
}

function buildHash(parts: unknown): string {
  const h = crypto.createHash("sha256");
  h.update(fs.readFileSync(BUILD_SCRIPT));
  h.update(JSON.stringify(parts));
  return h.digest("hex").slice(0, 16);
}

function describe(
  dir: string,
  caCertFile: string,
  caKeyFile: string | undefined,
  hash: string,
): Omit<Rootfs, "built" | "seconds"> {
  return {
    dir,
    rootfs: path.join(dir, "rootfs"),
    mirrorRoot: path.join(dir, "mirror"),
    mirrorKeyFile: path.join(dir, "mirror-key.asc"),
    caCertFile,
    caKeyFile,
    manifestFile: path.join(dir, "manifest.txt"),
    hash,
  };
}

/**
 * The cached rootfs + mirror for these options, building it first when needed (minutes; progress goes
 * to opts.log). Safe to call from several processes at once.
 */
export async function ensureRootfs(opts: RootfsOptions = {}): Promise<Rootfs> {
  const t0 = Date.now();
  const cacheDir = opts.cacheDir ?? DEFAULT_CACHE_DIR;
  const log = opts.log ?? ((line: string) => console.log(line));
  fs.mkdirSync(cacheDir, { recursive: true });

  let caCertFile: string;
  let caKeyFile: string | undefined;
  if (opts.caCertPem !== undefined) {
    const sha = crypto.createHash("sha256").update(opts.caCertPem).digest("hex").slice(0, 16);
    caCertFile = path.join(cacheDir, `ca-given-${sha}.crt`);
    if (!fs.existsSync(caCertFile)) {
      const tmp = `${caCertFile}.tmp-${process.pid}`;
      fs.writeFileSync(tmp, opts.caCertPem);
      fs.renameSync(tmp, caCertFile);
    }
  } else {
    const ca = ensureLabCa(cacheDir);
    caCertFile = ca.certFile;
    caKeyFile = ca.keyFile;
  }

  const include = [...DEBOOTSTRAP_INCLUDE];
  const amiPackages = [...(opts.amiPackages ?? AMI_PACKAGES)];
  const mirrorPackages = [...(opts.mirrorPackages ?? MIRROR_PACKAGES)];
  const hash = buildHash({
    suite: SUITE,
    mirrors: [DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR],
    include,
    amiPackages,
    mirrorPackages,
    ca: fs.readFileSync(caCertFile, "utf8"),
  });
  const dir = path.join(cacheDir, `rootfs-${hash}`);
  const result = describe(dir, caCertFile, caKeyFile, hash);
  if (fs.existsSync(path.join(dir, "complete"))) {
    return { ...result, built: false, seconds: (Date.now() - t0) / 1000 };
  }

  log(`[rootfs] building ${dir} (cold build: a few minutes)`);
  const timeoutMs = opts.timeoutMs ?? 30 * 60_000;
  const env: NodeJS.ProcessEnv = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    LANG: "C.UTF-8",
    OUT: dir,
    MIRROR: DEBIAN_MIRROR,
    SECURITY_MIRROR: DEBIAN_SECURITY_MIRROR,
    SUITE,
    INCLUDE: include.join(","),
    BASE_PACKAGES: amiPackages.join(" "),
    REPO_PACKAGES: mirrorPackages.join(" "),
    CA_CERT: caCertFile,
  };
  const lockFile = path.join(cacheDir, "build.lock");
  const code = await new Promise<number>((resolve) => {
    const child = spawn("flock", ["-w", String(Math.ceil(timeoutMs / 1000)), lockFile, "bash", BUILD_SCRIPT], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
      cwd: "/",
    });
    const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
    const forward = (stream: NodeJS.ReadableStream | null): void => {
      let buf = "";
      stream?.setEncoding("utf8");
      stream?.on("data", (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
          log(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
      stream?.on("end", () => {
        if (buf) log(buf);
      });
    };
    forward(child.stdout);
    forward(child.stderr);
    child.on("error", (e) => {
      log(`[rootfs] cannot run the build: ${e.message}`);
      clearTimeout(timer);
      resolve(127);
    });
    child.on("close", (c, sig) => {
      clearTimeout(timer);
      resolve(c ?? (sig ? 128 : 1));
    });
  });
  if (code !== 0 || !fs.existsSync(path.join(dir, "complete"))) {
    throw new Error(`[rootfs] building ${dir} failed (exit ${code}); see the lines above`);
  }
  const seconds = (Date.now() - t0) / 1000;
  log(`[rootfs] ready in ${seconds.toFixed(1)} s: ${dir}`);
  return { ...result, built: true, seconds };
}
