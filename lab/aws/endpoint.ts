/**
 * The lab's one stand-in for AWS: IMDSv2, the SigV4-authenticated HTTPS APIs (SSM, CloudWatch, STS; see
 * services.ts), a static Debian mirror stand-in whose reachability the lab toggles, and a control API on a unix
 * socket. Everything else the nodes run (cloud-init, apt, awscli, redis) is real.
 *
 *   node -r ts-node/register/transpile-only lab/aws/endpoint.ts --state-dir DIR
 *
 * DIR/config.json is read once; DIR/state.json holds everything mutable and is rewritten atomically on every
 * change; DIR/requests.log gets one JSON line per answered request (never a secret, token or signature).
 */
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as net from "net";
import * as path from "path";
import * as zlib from "zlib";
import { createHash, randomBytes, randomUUID } from "crypto";
import {
  authorizeAll,
  authorizeWithResourcePolicy,
  AuthzResult,
  PolicyDocument,
  parsePolicies,
  statementsForPrincipal,
} from "./iam";
import { Imds } from "./imds";
import {
  accessDenied,
  authError,
  AwsError,
  jsonError,
  jsonResult,
  parseForm,
  parseJsonBody,
  parseTarget,
  Protocol,
  queryError,
  queryResult,
  unflattenQuery,
  WireResponse,
} from "./protocols";
import {
  ActionContext,
  Caller,
  callerArn,
  fakeCiphertext,
  isKmsKeyArn,
  serviceBySigningName,
  serviceByTarget,
  ServiceDef,
} from "./services";
import { MAX_S3_BODY, ReceivedBody, S3Error, s3ErrorBody, serveS3, routeOf } from "./s3";
import type { AuthFailureKind } from "./sigv4";
import { KnownKey, parseAuthorization, verify } from "./sigv4";
import {
  controlSocketPath,
  EndpointConfig,
  EndpointState,
  InstanceSpec,
  IssuedCredentials,
  loadConfig,
  loadState,
  objectDir,
  pidPath,
  requestLogPath,
  saveState,
} from "./state";

const MAX_BODY = 1024 * 1024;
/** Instance-profile credentials live six hours; a fresh set is handed out once less than an hour remains. */
const CREDENTIAL_LIFETIME_MS = 6 * 3600 * 1000;
const CREDENTIAL_REFRESH_MS = 3600 * 1000;

export interface RequestLogEntry {
  time: string;
  sourceIp: string;
  service: string;
  action: string;
  resources: string[];
  decision: "allow" | "deny" | "error";
  status: number;
  /** AWS error code, when the answer was an error. */
  error?: string;
}

/** `::ffff:10.77.0.11` (an IPv4 peer on a dual-stack socket) -> `10.77.0.11`. */
export function normalizeIp(addr: string | undefined): string {
  if (!addr) return "";
  return addr.startsWith("::ffff:") ? addr.slice(7) : addr;
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new AwsError("RequestEntityTooLarge", "Request body too large", 413));
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function rawHeaderPairs(req: http.IncomingMessage): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) out.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
  return out;
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(",") : v;
}

function send(res: http.ServerResponse, r: { status: number; headers: Record<string, string>; body: string }): void {
  const body = Buffer.from(r.body, "utf8");
  res.writeHead(r.status, { ...r.headers, "content-length": String(body.length) });
  res.end(body);
}

function newAccessKeyId(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  return "ASIA" + Array.from(randomBytes(16), (b) => alphabet[b % 32]).join("");
}

/** Which service a request is for: the signed credential scope first, then X-Amz-Target, then the Host name. */
export function resolveService(
  authorization: string | undefined,
  target: string | undefined,
  host: string | undefined,
): ServiceDef | undefined {
  const auth = authorization ? parseAuthorization(authorization) : undefined;
  if (auth) return serviceBySigningName(auth.service);
  const t = parseTarget(target);
  if (t) return serviceByTarget(t.prefix);
  const first = (host ?? "").split(".")[0];
  return serviceBySigningName(first);
}

export class Endpoint {
  private state: EndpointState;
  private policies = new Map<string, PolicyDocument[]>();
  private readonly warned = new Set<string>();
  private readonly imds: Imds;
  private readonly servers: net.Server[] = [];
  private readonly aptSockets = new Set<net.Socket>();

  constructor(
    readonly dir: string,
    readonly config: EndpointConfig,
  ) {
    this.state = loadState(dir);
    for (const [name, r] of Object.entries(this.state.roles)) this.policies.set(name, parsePolicies(r.policies));
    this.imds = new Imds({
      config,
      instance: (ip) => this.state.instances[ip],
      credentials: (ip) => this.credentialsFor(ip),
      now: () => Date.now(),
    });
  }

  // ---------------------------------------------------------------- state

  private persist(): void {
    saveState(this.dir, this.state);
  }

  private log(entry: Omit<RequestLogEntry, "time">): void {
    const line = JSON.stringify({ time: new Date().toISOString(), ...entry });
    fs.appendFileSync(requestLogPath(this.dir), line + "\n");
  }

  private warnOnce(message: string): void {
    if (this.warned.has(message)) return;
    this.warned.add(message);
    console.warn(`[aws-endpoint] warning: ${message}`);
  }

  /** The instance's current credentials, reusing a set with more than an hour left (AWS rotates ahead of expiry). */
  private credentialsFor(ip: string): { accessKeyId: string; creds: IssuedCredentials } {
    const inst = this.state.instances[ip];
    const now = Date.now();
    let pruned = false;
    let best: { accessKeyId: string; creds: IssuedCredentials } | undefined;
    for (const [id, c] of Object.entries(this.state.credentials)) {
      if (c.expiresAt <= now) {
        delete this.state.credentials[id];
        pruned = true;
        continue;
      }
      const mine = c.instanceIp === ip && c.instanceId === inst.instanceId && c.role === inst.role;
      if (mine && c.expiresAt - now > CREDENTIAL_REFRESH_MS && (!best || c.expiresAt > best.creds.expiresAt)) {
        best = { accessKeyId: id, creds: c };
      }
    }
    if (best) {
      if (pruned) this.persist();
      return best;
    }
    const creds: IssuedCredentials = {
      secretAccessKey: randomBytes(30).toString("base64"),
      sessionToken: randomBytes(96).toString("base64"),
      issuedAt: now,
      expiresAt: now + CREDENTIAL_LIFETIME_MS,
      instanceIp: ip,
      instanceId: inst.instanceId,
      role: inst.role,
    };
    const accessKeyId = newAccessKeyId();
    this.state.credentials[accessKeyId] = creds;
    this.persist();
    return { accessKeyId, creds };
  }

  /** What SigV4 verification needs of a key this endpoint issued (undefined: not one of ours). */
  private issuedKey(accessKeyId: string): KnownKey | undefined {
    const c = this.state.credentials[accessKeyId];
    return c && { secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken, expiresAt: c.expiresAt };
  }

  /** Who signed with a verified key: the instance and role it was issued to. */
  private callerOf(accessKeyId: string): Caller {
    const c = this.state.credentials[accessKeyId];
    return { accessKeyId, instanceId: c.instanceId, instanceIp: c.instanceIp, role: c.role };
  }

  // ---------------------------------------------------------------- IMDS

  /**
   * A slow IMDS (a fault, like apt's reachability; not persisted): every answer waits this long. A busy
   * instance sees the same, and awscli's defaults give up after one attempt of 1 s.
   */
  private imdsDelayMs = 0;

  private handleImds(req: http.IncomingMessage, res: http.ServerResponse): void {
    const ip = normalizeIp(req.socket.remoteAddress);
    req.resume();
    const a = this.imds.handle(req.method ?? "GET", req.url ?? "/", req.headers, ip);
    this.log({
      sourceIp: ip,
      service: "imds",
      action: a.action,
      resources: [a.resource],
      decision: a.decision,
      status: a.status,
    });
    const answer = () => send(res, req.method === "HEAD" ? { ...a, body: "" } : a);
    if (this.imdsDelayMs > 0) setTimeout(answer, this.imdsDelayMs);
    else answer();
  }

  // ---------------------------------------------------------------- AWS APIs

  private async handleApi(req: http.IncomingMessage, res: http.ServerResponse, secure = true): Promise<void> {
    const ip = normalizeIp(req.socket.remoteAddress);
    const requestId = randomUUID();
    const service = resolveService(header(req, "authorization"), header(req, "x-amz-target"), header(req, "host"));
    if (service?.signingName === "s3") return this.handleS3(req, res, secure);
    if (!secure) {
      // Only S3 answers plain HTTP; the other service endpoints are HTTPS only.
      req.resume();
      res.writeHead(400).end();
      return;
    }
    const target = parseTarget(header(req, "x-amz-target"));
    const protocol: Protocol = service?.json && (target || !service.query) ? "json" : "query";
    const entry: Omit<RequestLogEntry, "time"> = {
      sourceIp: ip,
      service: service?.signingName ?? "unknown",
      action: target?.action ?? "",
      resources: [],
      decision: "error",
      status: 0,
    };
    const fail = (err: AwsError): WireResponse =>
      protocol === "json"
        ? jsonError(service?.json?.version ?? "1.1", requestId, err)
        : queryError(service?.query?.xmlns ?? "", requestId, err);

    let answer: WireResponse;
    try {
      const body = await readBody(req);
      if (!service) throw new AwsError("UnknownServiceException", "The endpoint does not serve this service.", 400);
      const [pathPart, query = ""] = (req.url ?? "/").split(/\?(.*)/s, 2);
      const verified = verify(
        { method: req.method ?? "GET", path: pathPart, query, headers: rawHeaderPairs(req), body },
        {
          now: Date.now(),
          region: this.config.region,
          service: service.signingName,
          lookup: (id) => this.issuedKey(id),
        },
      );
      // Query services take the action from the (possibly gzip-compressed) form body; parse it before auth errors
      // so the log names the action even for refused calls.
      const plain = header(req, "content-encoding") === "gzip" ? zlib.gunzipSync(body) : body;
      let input: Record<string, unknown>;
      let action: string;
      if (protocol === "json") {
        if (!target || target.prefix !== service.json?.targetPrefix) {
          throw new AwsError("UnknownOperationException", "Missing or unknown X-Amz-Target");
        }
        action = target.action;
        entry.action = action;
        if (!verified.ok) throw new AuthRefused(authError(protocol, verified.failure.kind, verified.failure.message));
        input = parseJsonBody(plain);
      } else {
        const form = parseForm(plain, query);
        action = form.Action ?? "";
        entry.action = action;
        if (!verified.ok) throw new AuthRefused(authError(protocol, verified.failure.kind, verified.failure.message));
        input = unflattenQuery(form);
      }
      const handler = Object.prototype.hasOwnProperty.call(service.actions, action)
        ? service.actions[action]
        : undefined;
      if (!handler) {
        throw protocol === "json"
          ? new AwsError("UnknownOperationException", `Unknown operation ${action}`)
          : new AwsError("InvalidAction", `Could not find operation ${action} for version`);
      }
      const caller = this.callerOf(verified.auth.accessKeyId);
      const output = handler(input, this.actionContext(caller, protocol, entry));
      entry.decision = "allow";
      answer =
        protocol === "json"
          ? jsonResult(service.json?.version ?? "1.1", requestId, output)
          : queryResult(service.query?.xmlns ?? "", action, requestId, output);
    } catch (e) {
      const err = e instanceof AuthRefused ? e.error : e instanceof AwsError ? e : internalError(e);
      // Refused authentication and refused authorization are both "deny"; anything else is an "error".
      entry.decision = e instanceof AuthRefused || err.code === accessDenied(protocol, "").code ? "deny" : "error";
      entry.error = err.code;
      answer = fail(err);
    }
    entry.status = answer.status;
    this.log(entry);
    send(res, answer);
  }

  private actionContext(caller: Caller, protocol: Protocol, entry: Omit<RequestLogEntry, "time">): ActionContext {
    return {
      config: this.config,
      state: this.state,
      caller,
      now: Date.now(),
      changed: () => this.persist(),
      authorize: (action, resources, conditionContext) => {
        // A call may authorize twice (SSM's read, then KMS's decrypt for it): the log lists both resources.
        entry.resources = [...new Set([...entry.resources, ...resources])];
        const policies = this.policies.get(caller.role) ?? [];
        const r = authorizeAll(policies, action, resources, conditionContext, (m) => this.warnOnce(m));
        if (r.ok) return;
        const who = callerArn(this.config.account, caller);
        const on = r.resource === "*" ? "" : ` on resource: ${r.resource}`;
        const why =
          r.result.decision === "explicitDeny"
            ? "with an explicit deny in an identity-based policy"
            : `because no identity-based policy allows the ${action} action`;
        throw accessDenied(protocol, `User: ${who} is not authorized to perform: ${action}${on} ${why}`);
      },
    };
  }

  // ---------------------------------------------------------------- S3

  /** Streams a request body to a temporary file below DIR/s3, hashing it on the way (S3 checks both digests). */
  private receiveBody(req: http.IncomingMessage): Promise<ReceivedBody> {
    const tmpDir = path.join(objectDir(this.dir), "incoming");
    fs.mkdirSync(tmpDir, { recursive: true });
    const file = path.join(tmpDir, randomUUID());
    const md5 = createHash("md5");
    const sha = createHash("sha256");
    const out = fs.createWriteStream(file, { mode: 0o600 });
    let size = 0;
    return new Promise((resolve, reject) => {
      const failed = (e: unknown) => {
        out.destroy();
        fs.rmSync(file, { force: true });
        reject(e instanceof Error ? e : new Error(String(e)));
      };
      req.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_S3_BODY) {
          req.destroy();
          failed(new S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400));
          return;
        }
        md5.update(c);
        sha.update(c);
        if (!out.write(c)) {
          req.pause();
          out.once("drain", () => req.resume());
        }
      });
      req.on("end", () => out.end(() => resolve({ file, size, md5: md5.digest(), sha256Hex: sha.digest("hex") })));
      req.on("error", failed);
    });
  }

  private async handleS3(req: http.IncomingMessage, res: http.ServerResponse, secure: boolean): Promise<void> {
    const ip = normalizeIp(req.socket.remoteAddress);
    const requestId = randomUUID();
    const [rawPath, rawQuery = ""] = (req.url ?? "/").split(/\?(.*)/s, 2);
    const entry: Omit<RequestLogEntry, "time"> = {
      sourceIp: ip,
      service: "s3",
      action: "",
      resources: [],
      decision: "error",
      status: 0,
    };
    let body: ReceivedBody | undefined;
    let answer: {
      status: number;
      headers: Record<string, string>;
      body?: string;
      file?: { path: string; start: number; end: number };
    };
    try {
      body = await this.receiveBody(req);
      const headers = Object.fromEntries(Object.keys(req.headers).map((k) => [k, header(req, k)]));
      const s3req = {
        method: req.method ?? "GET",
        host: header(req, "host") ?? "",
        path: rawPath,
        query: new URLSearchParams(rawQuery),
        headers,
        body,
      };
      const route = routeOf(s3req);
      entry.action = route.action;
      entry.resources = route.resources;
      const verified = verify(
        { method: s3req.method, path: rawPath, query: rawQuery, headers: rawHeaderPairs(req), body: Buffer.alloc(0) },
        {
          now: Date.now(),
          region: this.config.region,
          service: "s3",
          lookup: (id) => this.issuedKey(id),
        },
      );
      if (!verified.ok) throw new S3AuthRefused(s3AuthError(verified.failure.kind, verified.failure.message));
      const caller = this.callerOf(verified.auth.accessKeyId);
      const who = callerArn(this.config.account, caller);
      const roleArn = `arn:aws:iam::${this.config.account}:role/${caller.role}`;
      const refuse = (action: string, resource: string, r: AuthzResult): never => {
        const why =
          r.decision === "explicitDeny"
            ? `with an explicit deny in ${r.statement?.startsWith("bucket policy") ? "a resource-based policy" : "an identity-based policy"}`
            : `because no identity-based policy allows the ${action} action`;
        throw new S3Error(
          "AccessDenied",
          `User: ${who} is not authorized to perform: ${action} on resource: "${resource}" ${why}`,
          403,
        );
      };
      const received = body;
      answer = serveS3(s3req, {
        region: this.config.region,
        state: this.state,
        dataDir: objectDir(this.dir),
        now: Date.now(),
        changed: () => this.persist(),
        authorize: (action, resource, bucket, context = {}) => {
          const ctx = { "aws:SecureTransport": String(secure), ...context };
          const bucketPolicy =
            bucket.policy && statementsForPrincipal(bucket.policy, [roleArn, who], this.config.account);
          const r = authorizeWithResourcePolicy(
            this.policies.get(caller.role) ?? [],
            bucketPolicy,
            { action, resource, context: ctx },
            (m) => this.warnOnce(m),
          );
          if (r.decision !== "allow") refuse(action, resource, r);
        },
        authorizeKey: (action, keyArn) => {
          const ctx = {
            "kms:ViaService": `s3.${this.config.region}.amazonaws.com`,
            "kms:CallerAccount": this.config.account,
            "aws:SecureTransport": String(secure),
          };
          const r = authorizeAll(this.policies.get(caller.role) ?? [], action, [keyArn], ctx, (m) => this.warnOnce(m));
          if (!r.ok) refuse(action, keyArn, r.result);
        },
      });
      if (fs.existsSync(received.file)) fs.rmSync(received.file, { force: true });
      entry.decision = "allow";
    } catch (e) {
      if (body) fs.rmSync(body.file, { force: true });
      const err =
        e instanceof S3AuthRefused
          ? e.error
          : e instanceof S3Error
            ? e
            : new S3Error("InternalError", "We encountered an internal error. Please try again.", 500);
      if (!(e instanceof S3Error) && !(e instanceof S3AuthRefused))
        console.error("[aws-endpoint] S3 internal error:", e);
      entry.decision = e instanceof S3AuthRefused || err.code === "AccessDenied" ? "deny" : "error";
      entry.error = err.code;
      answer = {
        status: err.status,
        headers: { "content-type": "application/xml" },
        body: req.method === "HEAD" ? "" : s3ErrorBody(err, requestId, rawPath),
      };
    }
    entry.status = answer.status;
    this.log(entry);
    const headers: Record<string, string> = { "x-amz-request-id": requestId, ...answer.headers };
    if (answer.file) {
      res.writeHead(answer.status, headers);
      fs.createReadStream(answer.file.path, { start: answer.file.start, end: answer.file.end }).pipe(res);
      return;
    }
    const text = Buffer.from(answer.body ?? "", "utf8");
    if (headers["content-length"] === undefined) headers["content-length"] = String(text.length);
    res.writeHead(answer.status, headers);
    res.end(req.method === "HEAD" ? undefined : text);
  }

  // ---------------------------------------------------------------- apt mirror stand-in

  private handleApt(req: http.IncomingMessage, res: http.ServerResponse): void {
    const ip = normalizeIp(req.socket.remoteAddress);
    req.resume();
    const root = this.config.aptRepoDir ?? "";
    const done = (status: number) =>
      this.log({
        sourceIp: ip,
        service: "apt",
        action: req.method ?? "",
        resources: [req.url ?? ""],
        decision: status < 400 ? "allow" : "error",
        status,
      });
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405).end();
      return done(405);
    }
    let rel: string;
    try {
      rel = decodeURIComponent((req.url ?? "/").split("?")[0]);
    } catch {
      res.writeHead(400).end();
      return done(400);
    }
    const file = path.resolve(root, "." + path.posix.normalize("/" + rel));
    const st = file.startsWith(path.resolve(root) + path.sep) && fs.existsSync(file) ? fs.statSync(file) : undefined;
    if (!st || !st.isFile()) {
      res.writeHead(404, { "content-type": "text/plain" }).end("Not Found\n");
      return done(404);
    }
    const since = header(req, "if-modified-since");
    if (since && Math.floor(st.mtimeMs / 1000) <= Math.floor(Date.parse(since) / 1000)) {
      res.writeHead(304).end();
      return done(304);
    }
    res.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-length": String(st.size),
      "last-modified": st.mtime.toUTCString(),
    });
    done(200);
    if (req.method === "HEAD") res.end();
    else fs.createReadStream(file).pipe(res);
  }

  /**
   * With apt unreachable the mirror behaves like a NAT gateway that does not route yet: every connection is
   * reset, so apt reports `W: Failed to fetch ...` (and `apt-get update` still exits 0 on Debian 12).
   */
  private onAptConnection(socket: net.Socket): void {
    if (!this.state.apt.reachable) {
      const ip = normalizeIp(socket.remoteAddress);
      this.log({ sourceIp: ip, service: "apt", action: "connect", resources: [], decision: "deny", status: 0 });
      socket.resetAndDestroy();
      return;
    }
    this.aptSockets.add(socket);
    socket.on("close", () => this.aptSockets.delete(socket));
  }

  setAptReachable(reachable: boolean): void {
    this.state.apt.reachable = reachable;
    this.persist();
    if (!reachable) for (const s of this.aptSockets) s.resetAndDestroy();
  }

  // ---------------------------------------------------------------- control API

  private async handleControl(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const reply = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)) });
      res.end(text);
    };
    try {
      const body = await readBody(req);
      const input = body.length ? (JSON.parse(body.toString("utf8")) as Record<string, unknown>) : {};
      const url = new URL(req.url ?? "/", "http://control");
      const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
      const route = `${req.method ?? ""} /${parts[0] ?? ""}${parts.length > 1 ? "/:arg" : ""}`;
      const arg = parts.slice(1).join("/");
      reply(200, this.control(route, arg, input) ?? { ok: true });
    } catch (e) {
      reply(e instanceof ControlError ? e.status : 400, { error: e instanceof Error ? e.message : String(e) });
    }
  }

  /** One switch for every control route, so the API surface is readable in one place. */
  private control(route: string, arg: string, input: Record<string, unknown>): unknown {
    switch (route) {
      case "GET /health":
        return { ok: true, pid: process.pid, region: this.config.region };
      case "GET /instances":
        return this.state.instances;
      case "PUT /instances/:arg": {
        if (net.isIP(arg) === 0) throw new ControlError(400, `not an IP address: ${arg}`);
        this.state.instances[arg] = checkInstance(input);
        this.persist();
        return undefined;
      }
      case "DELETE /instances/:arg": {
        delete this.state.instances[arg];
        // Its credentials die with it, so a recycled address never inherits a previous instance's identity.
        for (const [id, c] of Object.entries(this.state.credentials))
          if (c.instanceIp === arg) delete this.state.credentials[id];
        this.persist();
        return undefined;
      }
      case "PUT /roles/:arg": {
        const raw = input.policies;
        if (!Array.isArray(raw)) throw new ControlError(400, "policies must be an array of policy documents");
        const docs = parsePolicies(raw as (string | PolicyDocument)[]);
        this.state.roles[arg] = { policies: docs };
        this.policies.set(arg, docs);
        this.persist();
        return undefined;
      }
      case "DELETE /roles/:arg":
        delete this.state.roles[arg];
        this.policies.delete(arg);
        this.persist();
        return undefined;
      case "GET /parameters":
        return Object.entries(this.state.parameters).map(([name, p]) => ({
          name,
          type: p.type,
          value: p.value,
          version: p.version,
          lastModified: p.lastModified,
        }));
      case "PUT /parameters": {
        const { name, type, value, keyId } = input;
        if (typeof name !== "string" || typeof value !== "string")
          throw new ControlError(400, "name and value are required strings");
        if (keyId !== undefined && (type !== "SecureString" || typeof keyId !== "string" || !isKmsKeyArn(keyId)))
          throw new ControlError(400, "keyId must be a KMS key ARN, on a SecureString");
        if (type !== "String" && type !== "SecureString" && type !== "StringList")
          throw new ControlError(400, "type must be String or SecureString");
        const prev = this.state.parameters[name];
        this.state.parameters[name] = {
          type,
          value,
          version: (prev?.version ?? 0) + 1,
          lastModified: Date.now(),
          ciphertext: type === "SecureString" ? fakeCiphertext() : undefined,
          keyId: type === "SecureString" ? keyId : undefined,
        };
        this.persist();
        return undefined;
      }
      case "DELETE /parameters/:arg":
        if (!this.state.parameters[arg]) throw new ControlError(404, `no parameter ${arg}`);
        delete this.state.parameters[arg];
        this.persist();
        return undefined;
      case "PUT /apt":
        if (typeof input.reachable !== "boolean") throw new ControlError(400, "reachable must be a boolean");
        this.setAptReachable(input.reachable);
        return undefined;
      case "GET /apt":
        return this.state.apt;
      case "PUT /imds":
        if (typeof input.delayMs !== "number" || input.delayMs < 0 || input.delayMs > 60_000)
          throw new ControlError(400, "delayMs must be a number of milliseconds in [0, 60000]");
        this.imdsDelayMs = input.delayMs;
        return undefined;
      case "PUT /buckets/:arg": {
        const { policy, kmsKeyArn, versioning } = input;
        if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(arg)) throw new ControlError(400, `not a bucket name: ${arg}`);
        if (kmsKeyArn !== undefined && typeof kmsKeyArn !== "string")
          throw new ControlError(400, "kmsKeyArn must be a string");
        const prev = this.state.buckets[arg];
        this.state.buckets[arg] = {
          policy: policy === undefined ? undefined : parsePolicies([policy as string | PolicyDocument])[0],
          kmsKeyArn,
          versioning: versioning === true,
          objects: prev?.objects ?? {},
          noncurrent: prev?.noncurrent ?? {},
        };
        this.persist();
        return undefined;
      }
      case "GET /buckets/:arg": {
        const b = this.state.buckets[arg];
        if (!b) throw new ControlError(404, `no bucket ${arg}`);
        const dir = objectDir(this.dir);
        const view = (o: { file: string }) => ({ ...o, path: path.join(dir, o.file) });
        return {
          policy: b.policy,
          kmsKeyArn: b.kmsKeyArn,
          versioning: b.versioning,
          objects: Object.fromEntries(Object.entries(b.objects).map(([k, o]) => [k, view(o)])),
          noncurrent: Object.fromEntries(Object.entries(b.noncurrent).map(([k, os]) => [k, os.map(view)])),
          uploads: Object.values(this.state.uploads).filter((u) => u.bucket === arg).length,
        };
      }
      case "PUT /objects": {
        // A file put into a bucket as its owner would (no policy, no KMS check): how a test carries a backup
        // from one lab's endpoint into the next one's, as an operator copies it between buckets.
        const { bucket, key, file } = input;
        if (typeof bucket !== "string" || typeof key !== "string" || typeof file !== "string")
          throw new ControlError(400, "bucket, key and file are required strings");
        const b = this.state.buckets[bucket];
        if (!b) throw new ControlError(404, `no bucket ${bucket}`);
        const data = fs.readFileSync(file);
        const name = randomUUID();
        fs.mkdirSync(objectDir(this.dir), { recursive: true });
        fs.writeFileSync(path.join(objectDir(this.dir), name), data, { mode: 0o600 });
        const prev = b.objects[key];
        if (prev && b.versioning) (b.noncurrent[key] ??= []).push(prev);
        b.objects[key] = {
          file: name,
          size: data.length,
          etag: createHash("md5").update(data).digest("hex"),
          lastModified: Date.now(),
          versionId: b.versioning ? randomUUID() : "null",
          contentType: "binary/octet-stream",
          kmsKeyArn: b.kmsKeyArn,
        };
        this.persist();
        return undefined;
      }
      case "GET /requests":
        return readRequestLog(this.dir);
      case "GET /metrics":
        return this.state.metrics;
      default:
        throw new ControlError(404, `no route ${route}`);
    }
  }

  // ---------------------------------------------------------------- lifecycle

  private listen(server: net.Server, where: net.ListenOptions): Promise<void> {
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(where, () => {
        server.off("error", reject);
        resolve();
      });
    });
  }

  async start(): Promise<void> {
    const c = this.config;
    const onError = (res: http.ServerResponse) => (e: unknown) => {
      console.error("[aws-endpoint] handler failed:", e);
      if (!res.headersSent) res.writeHead(500).end();
    };
    const imds = http.createServer((req, res) => this.handleImds(req, res));
    const api = https.createServer({ cert: c.tls.certPem, key: c.tls.keyPem }, (req, res) => {
      this.handleApi(req, res).catch(onError(res));
    });
    const control = http.createServer((req, res) => {
      this.handleControl(req, res).catch(onError(res));
    });
    await this.listen(imds, { host: c.imdsListen, port: c.imdsPort });
    await this.listen(api, { host: c.listen, port: c.httpsPort });
    if (c.httpPort) {
      const plain = http.createServer((req, res) => {
        this.handleApi(req, res, false).catch(onError(res));
      });
      await this.listen(plain, { host: c.listen, port: c.httpPort });
    }
    if (c.aptRepoDir) {
      const apt = http.createServer((req, res) => this.handleApt(req, res));
      apt.on("connection", (s: net.Socket) => this.onAptConnection(s));
      await this.listen(apt, { host: c.listen, port: c.aptPort });
    }
    const sock = controlSocketPath(this.dir);
    fs.rmSync(sock, { force: true });
    // The control socket is last: /health answering means every other listener is up.
    await this.listen(control, { path: sock });
    fs.chmodSync(sock, 0o600);
  }

  stop(): void {
    for (const s of this.servers) s.close();
    for (const s of this.aptSockets) s.destroy();
    fs.rmSync(controlSocketPath(this.dir), { force: true });
  }
}

/** An authentication failure, kept apart from other errors so the log can call it a deny. */
class AuthRefused extends Error {
  constructor(readonly error: AwsError) {
    super(error.message);
  }
}

/** An S3 authentication failure (logged as a deny). */
class S3AuthRefused extends Error {
  constructor(readonly error: S3Error) {
    super(error.message);
  }
}

/** S3's own codes for what the other services call InvalidSignatureException and friends. */
function s3AuthError(kind: AuthFailureKind, message: string): S3Error {
  const codes: Record<AuthFailureKind, [string, number]> = {
    missing: ["AccessDenied", 403],
    incomplete: ["InvalidRequest", 400],
    unknownKey: ["InvalidAccessKeyId", 403],
    expiredToken: ["ExpiredToken", 400],
    badScope: ["AuthorizationHeaderMalformed", 400],
    skew: ["RequestTimeTooSkewed", 403],
    badSignature: ["SignatureDoesNotMatch", 403],
  };
  const [code, status] = codes[kind];
  return new S3Error(code, message, status);
}

function internalError(e: unknown): AwsError {
  console.error("[aws-endpoint] internal error:", e);
  return new AwsError("InternalFailure", "Internal error", 500);
}

class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function checkInstance(input: Record<string, unknown>): InstanceSpec {
  const { instanceId, az, instanceType, role, hostname } = input;
  if (typeof instanceId !== "string" || !/^i-[0-9a-f]{8,17}$/.test(instanceId)) {
    throw new ControlError(400, "instanceId must look like i-0123456789abcdef0");
  }
  if (typeof az !== "string" || typeof instanceType !== "string")
    throw new ControlError(400, "az and instanceType are required");
  if (role !== undefined && role !== null && typeof role !== "string")
    throw new ControlError(400, "role must be a string");
  if (hostname !== undefined && typeof hostname !== "string") throw new ControlError(400, "hostname must be a string");
  return { instanceId, az, instanceType, role: role ?? "", hostname };
}

export function readRequestLog(dir: string): RequestLogEntry[] {
  const file = requestLogPath(dir);
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as RequestLogEntry);
}

function parseArgs(argv: string[]): { stateDir: string } {
  const i = argv.indexOf("--state-dir");
  if (i < 0 || !argv[i + 1]) throw new Error("usage: endpoint.ts --state-dir DIR");
  return { stateDir: path.resolve(argv[i + 1]) };
}

async function main(): Promise<void> {
  const { stateDir } = parseArgs(process.argv.slice(2));
  const endpoint = new Endpoint(stateDir, loadConfig(stateDir));
  await endpoint.start();
  fs.writeFileSync(pidPath(stateDir), String(process.pid));
  console.log(`[aws-endpoint] pid ${process.pid} serving ${stateDir}`);
  const shutdown = (signal: string) => {
    console.log(`[aws-endpoint] ${signal}: stopping`);
    endpoint.stop();
    fs.rmSync(pidPath(stateDir), { force: true });
    process.exit(0);
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

if (require.main === module) {
  main().catch((e) => {
    console.error("[aws-endpoint] failed to start:", e);
    process.exit(1);
  });
}
