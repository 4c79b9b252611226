/**
 * Typed client for the AWS endpoint's control API (HTTP over DIR/control.sock), and the launcher that starts
 * the endpoint as a detached process (optionally inside a network namespace) that can outlive its parent.
 */
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { spawn } from "child_process";
import type { RequestLogEntry } from "./endpoint";
import type { PolicyDocument } from "./iam";
import type { EndpointConfig, InstanceSpec, MetricDatum } from "./state";
import { configPath, controlSocketPath, endpointLogPath, pidPath, writeFileAtomic } from "./state";

export type { RequestLogEntry } from "./endpoint";
export type { EndpointConfig, InstanceSpec, MetricDatum } from "./state";

export interface ParameterView {
  name: string;
  type: "String" | "SecureString" | "StringList";
  value: string;
  version: number;
  lastModified: number;
}

export interface ObjectView {
  size: number;
  etag: string;
  lastModified: number;
  versionId: string;
  kmsKeyArn?: string;
  /** The file holding the object's bytes (a test may read or damage it). */
  path: string;
}

export interface BucketView {
  policy?: PolicyDocument;
  kmsKeyArn?: string;
  versioning: boolean;
  objects: Record<string, ObjectView>;
  noncurrent: Record<string, ObjectView[]>;
  /** Multipart uploads begun and neither completed nor aborted. */
  uploads: number;
}

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const ENDPOINT_SCRIPT = path.join(__dirname, "endpoint.ts");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class AwsEndpointControl {
  readonly socketPath: string;

  constructor(readonly stateDir: string) {
    this.socketPath = controlSocketPath(stateDir);
  }

  private request<T>(method: string, urlPath: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          // A new connection per request: Node 20's global agent keeps sockets alive, and a request sent on
          // one just as the endpoint's server closes it for idleness (its 5 s keepAliveTimeout) fails with
          // EPIPE (seen in CI after a ~5 s pause between two control calls).
          agent: false,
          method,
          path: urlPath,
          headers: payload ? { "content-type": "application/json", "content-length": payload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            if ((res.statusCode ?? 500) >= 300) {
              reject(new Error(`control ${method} ${urlPath}: HTTP ${res.statusCode}: ${text}`));
              return;
            }
            try {
              resolve((text ? JSON.parse(text) : undefined) as T);
            } catch (e) {
              reject(e instanceof Error ? e : new Error(String(e)));
            }
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  }

  health(): Promise<{ ok: boolean; pid: number; region: string }> {
    return this.request("GET", "/health");
  }

  async putInstance(
    ip: string,
    spec: { instanceId: string; az: string; instanceType: string; role: string; hostname?: string },
  ): Promise<void> {
    await this.request("PUT", `/instances/${encodeURIComponent(ip)}`, spec);
  }

  async deleteInstance(ip: string): Promise<void> {
    await this.request("DELETE", `/instances/${encodeURIComponent(ip)}`);
  }

  instances(): Promise<Record<string, InstanceSpec>> {
    return this.request("GET", "/instances");
  }

  /** Policies are the exact documents the stack renders for the node role (JSON text or parsed). */
  async putRole(name: string, policies: (string | PolicyDocument)[]): Promise<void> {
    await this.request("PUT", `/roles/${encodeURIComponent(name)}`, { policies });
  }

  /** `keyId`: a SecureString's KMS key ARN (as `pulumi up` writes them); without it, the aws/ssm key. */
  async putParameter(name: string, type: "String" | "SecureString", value: string, keyId?: string): Promise<void> {
    await this.request("PUT", "/parameters", { name, type, value, keyId });
  }

  async deleteParameter(name: string): Promise<void> {
    await this.request("DELETE", `/parameters/${encodeURIComponent(name)}`);
  }

  parameters(): Promise<ParameterView[]> {
    return this.request("GET", "/parameters");
  }

  async setAptReachable(reachable: boolean): Promise<void> {
    await this.request("PUT", "/apt", { reachable });
  }

  /** Every IMDS answer waits `delayMs` (0: answer at once), as on a busy instance. */
  async setImdsDelay(delayMs: number): Promise<void> {
    await this.request("PUT", "/imds", { delayMs });
  }

  /** Creates (or reconfigures, keeping its objects) a bucket: its policy, default SSE-KMS key and versioning. */
  async putBucket(
    name: string,
    spec: { policy?: string | PolicyDocument; kmsKeyArn?: string; versioning?: boolean },
  ): Promise<void> {
    await this.request("PUT", `/buckets/${encodeURIComponent(name)}`, spec);
  }

  /** A bucket's objects as stored: size, etag, KMS key, and `path`, the file holding the bytes. */
  bucket(name: string): Promise<BucketView> {
    return this.request("GET", `/buckets/${encodeURIComponent(name)}`);
  }

  /** Puts a local file into a bucket as its owner would (no policy or key check): copying a backup across labs. */
  async putObject(bucket: string, key: string, file: string): Promise<void> {
    await this.request("PUT", "/objects", { bucket, key, file });
  }

  requests(): Promise<RequestLogEntry[]> {
    return this.request("GET", "/requests");
  }

  metrics(): Promise<MetricDatum[]> {
    return this.request("GET", "/metrics");
  }

  /** Polls /health until it answers; the endpoint opens the control socket only after every other listener. */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        if ((await this.health()).ok) return;
      } catch (e) {
        last = e;
      }
      await sleep(50);
    }
    throw new Error(`AWS endpoint in ${this.stateDir} not ready after ${timeoutMs} ms: ${String(last)}`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** True when `pid` is still the endpoint serving `stateDir` (not a recycled pid of something else). */
function isOurEndpoint(pid: number, stateDir: string): boolean {
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return cmdline.some((a) => a.endsWith("endpoint.ts")) && cmdline.includes(path.resolve(stateDir));
  } catch {
    return false;
  }
}

function logTail(stateDir: string): string {
  try {
    return fs.readFileSync(endpointLogPath(stateDir), "utf8").split("\n").slice(-20).join("\n");
  } catch {
    return "(no endpoint.log)";
  }
}

/**
 * Writes DIR/config.json, spawns the endpoint detached with its output in DIR/endpoint.log (no pipes to this
 * process, so it survives it), and waits for /health. With `netns`, it runs under `ip netns exec`, which execs
 * node in place, so the pid returned is the endpoint's own.
 */
export async function startAwsEndpoint(opts: {
  stateDir: string;
  config: EndpointConfig;
  netns?: string;
  readyTimeoutMs?: number;
}): Promise<{ pid: number; control: AwsEndpointControl }> {
  const stateDir = path.resolve(opts.stateDir);
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileAtomic(configPath(stateDir), JSON.stringify(opts.config, null, 2), 0o600);
  const node = [process.execPath, "-r", "ts-node/register/transpile-only", ENDPOINT_SCRIPT, "--state-dir", stateDir];
  const argv = opts.netns ? ["ip", "netns", "exec", opts.netns, ...node] : node;
  const out = fs.openSync(endpointLogPath(stateDir), "a");
  const child = spawn(argv[0], argv.slice(1), {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ["ignore", out, out],
    env: { ...process.env, TS_NODE_PROJECT: path.join(REPO_ROOT, "tsconfig.json") },
  });
  fs.closeSync(out);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error("could not spawn the AWS endpoint");
  // An object, not a `let`: the exit callback writes it asynchronously, which flow analysis cannot see.
  const status: { exited: number | null } = { exited: null };
  child.on("exit", (code) => (status.exited = code ?? -1));
  const control = new AwsEndpointControl(stateDir);
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  for (;;) {
    if (status.exited !== null)
      throw new Error(`AWS endpoint exited with ${status.exited} during start-up:\n${logTail(stateDir)}`);
    try {
      await control.waitReady(200);
      return { pid, control };
    } catch (e) {
      if (Date.now() > deadline) {
        await stopAwsEndpoint(stateDir, pid);
        throw new Error(`${String(e)}\n${logTail(stateDir)}`);
      }
    }
  }
}

/** Stops the endpoint serving `stateDir` (pid from DIR/endpoint.pid, or `pid`): SIGTERM, then SIGKILL after 5 s. */
export async function stopAwsEndpoint(stateDir: string, pid?: number): Promise<void> {
  const dir = path.resolve(stateDir);
  const file = pidPath(dir);
  const target = pid ?? (fs.existsSync(file) ? Number(fs.readFileSync(file, "utf8").trim()) : undefined);
  if (!target || !alive(target) || !isOurEndpoint(target, dir)) {
    fs.rmSync(file, { force: true });
    return;
  }
  process.kill(target, "SIGTERM");
  const deadline = Date.now() + 5000;
  while (alive(target) && Date.now() < deadline) await sleep(50);
  if (alive(target)) process.kill(target, "SIGKILL");
  fs.rmSync(file, { force: true });
  fs.rmSync(controlSocketPath(dir), { force: true });
}
