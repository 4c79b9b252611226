/**
 * Drives the lab's AWS endpoint (lab/aws) with Debian's real awscli, on 127.0.0.1 high ports in this process's
 * network namespace: credentials through botocore's IMDSv2 chain, SigV4 checked by the endpoint, SSM and
 * CloudWatch calls authorized against the role's IAM policies, state surviving a restart, apt reachability.
 */
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { createHash, randomBytes } from "crypto";
import { AwsEndpointControl, startAwsEndpoint, stopAwsEndpoint } from "../../lab/aws/control";
import type { EndpointConfig } from "../../lab/aws/state";
import { nodeRolePolicy } from "../../components/ec2/iam";
import { METRICS_NAMESPACE } from "../../components/monitoring/metrics";
import { makeEndpointTls } from "../../lab/aws/tls";
import { AWS_CLI_IMDS } from "../../components/ec2/node/userData";
import { backupBucketPolicy } from "../../components/ec2/backups";

/** Debian's package, which the nodes run; a pip/pyenv `aws` earlier on PATH is not the same client. */
const AWS = "/usr/bin/aws";
const REGION = "us-east-1";
const ACCOUNT = "123456789012";
const ROLE = "redis-test-node";
const INSTANCE_ID = "i-0123456789abcdef0";
const PREFIX = "/redis/test";
const SECRET = "p@ss w0rd'\"$x\t~é";

/**
 * The node role's policy as the stack renders it (components/ec2/iam.ts: reads below the prefix, status
 * writes below `<prefix>/state`, metrics into the stack's namespace), plus one test-only Deny to exercise
 * explicit denials.
 */
const BUCKET = "redis-test-backups-0a1b2c";
const KEY_ARN = `arn:aws:kms:${REGION}:${ACCOUNT}:key/0a1b2c3d-1111-2222-3333-444455556666`;
const BACKUP_PREFIX = "redis/test";
/** Another stack's key in the same account. */
const OTHER_KEY_ARN = `arn:aws:kms:${REGION}:${ACCOUNT}:key/0a1b2c3d-7777-8888-9999-aaaabbbbcccc`;
const POLICIES = [
  JSON.stringify(
    nodeRolePolicy(REGION, ACCOUNT, PREFIX, `${PREFIX}/state`, KEY_ARN, { bucket: BUCKET, prefix: BACKUP_PREFIX }),
  ),
  JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      { Effect: "Deny", Action: "ssm:*", Resource: `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter${PREFIX}/forbidden` },
    ],
  }),
];

function canRun(): { ok: boolean; reason: string } {
  if (process.getuid?.() !== 0) return { ok: false, reason: "not root" };
  if (!fs.existsSync(AWS)) return { ok: false, reason: `${AWS} missing (apt-get install awscli)` };
  return { ok: true, reason: "" };
}

function describeAws(name: string, fn: () => void): void {
  const can = canRun();
  if (can.ok) return describe(name, fn);
  if (process.env.CI === "true") {
    return describe(name, () => {
      test("the AWS endpoint test can run here", () => {
        throw new Error(`cannot run (CI=true, so this fails instead of skipping): ${can.reason}`);
      });
    });
  }
  console.log(`Skipping "${name}": ${can.reason}`);
  describe.skip(name, fn);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

interface HttpAnswer {
  status: number;
  body: string;
}

function httpRequest(
  port: number,
  method: string,
  urlPath: string,
  headers: Record<string, string> = {},
  localAddress?: string,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, method, path: urlPath, headers, agent: false, localAddress },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

describeAws("AWS endpoint with the real awscli", () => {
  let dir: string;
  let config: EndpointConfig;
  let control: AwsEndpointControl;
  let env: NodeJS.ProcessEnv;
  let endpointUrl: string;

  /** Runs Debian's awscli against the endpoint; `extraEnv` overrides (e.g. static, tampered credentials). */
  function aws(args: string[], extraEnv: Record<string, string> = {}, url = endpointUrl): CliResult {
    const r = spawnSync(AWS, [...args, "--endpoint-url", url], {
      env: { ...env, ...extraEnv },
      encoding: "utf8",
      timeout: 60_000,
    });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  function ok(r: CliResult): string {
    if (r.code !== 0) throw new Error(`aws exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r.stdout;
  }

  async function imdsCredentials(): Promise<{ AccessKeyId: string; SecretAccessKey: string; Token: string }> {
    const token = await httpRequest(config.imdsPort, "PUT", "/latest/api/token", {
      "X-aws-ec2-metadata-token-ttl-seconds": "60",
    });
    const creds = await httpRequest(config.imdsPort, "GET", `/latest/meta-data/iam/security-credentials/${ROLE}`, {
      "X-aws-ec2-metadata-token": token.body,
    });
    return JSON.parse(creds.body) as { AccessKeyId: string; SecretAccessKey: string; Token: string };
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aws-endpoint-"));
    const tls = makeEndpointTls(path.join(dir, "tls"), { region: REGION, ips: ["127.0.0.1"] });
    const aptRepo = path.join(dir, "apt");
    fs.mkdirSync(path.join(aptRepo, "dists", "bookworm"), { recursive: true });
    fs.writeFileSync(path.join(aptRepo, "dists", "bookworm", "InRelease"), "Origin: lab\n");
    const [imdsPort, httpsPort, aptPort, httpPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    config = {
      listen: "127.0.0.1",
      imdsListen: "127.0.0.1",
      imdsPort,
      httpsPort,
      httpPort,
      aptPort,
      region: REGION,
      account: ACCOUNT,
      tls: { certPem: tls.certPem, keyPem: tls.keyPem },
      aptRepoDir: aptRepo,
    };
    endpointUrl = `https://127.0.0.1:${httpsPort}`;
    const home = path.join(dir, "home");
    fs.mkdirSync(home);
    // Only what awscli needs: no inherited AWS_* variables, config files or proxies may change which credentials
    // it finds, so IMDS is the one provider left in its chain.
    env = {
      PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
      HOME: home,
      LANG: "C.UTF-8",
      AWS_CONFIG_FILE: path.join(home, "no-config"),
      AWS_SHARED_CREDENTIALS_FILE: path.join(home, "no-credentials"),
      AWS_EC2_METADATA_SERVICE_ENDPOINT: `http://127.0.0.1:${imdsPort}/`,
      AWS_CA_BUNDLE: tls.caCertFile,
      AWS_DEFAULT_REGION: REGION,
      AWS_MAX_ATTEMPTS: "1",
      AWS_PAGER: "",
      NO_PROXY: "*",
    };
    ({ control } = await startAwsEndpoint({ stateDir: path.join(dir, "state"), config }));
    await control.putRole(ROLE, POLICIES);
    await control.putInstance("127.0.0.1", {
      instanceId: INSTANCE_ID,
      az: "us-east-1a",
      instanceType: "t3.small",
      role: ROLE,
    });
    await control.putParameter(`${PREFIX}/password`, "SecureString", SECRET, KEY_ARN);
    await control.putParameter(`${PREFIX}/under-another-key`, "SecureString", "other key", OTHER_KEY_ARN);
    await control.putParameter(`${PREFIX}/under-aws-ssm`, "SecureString", "aws/ssm");
    await control.putParameter(`${PREFIX}/plain`, "String", "hello");
    await control.putParameter("/other/secret", "SecureString", "not-yours");
    await control.putBucket(BUCKET, {
      policy: JSON.stringify(backupBucketPolicy(`arn:aws:s3:::${BUCKET}`)),
      kmsKeyArn: KEY_ARN,
      versioning: true,
    });
  }, 60_000);

  afterAll(async () => {
    if (dir) await stopAwsEndpoint(path.join(dir, "state"));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test("IMDSv2: tokens are required, TTLs are checked, unknown addresses get nothing", async () => {
    const noToken = await httpRequest(config.imdsPort, "GET", "/latest/meta-data/instance-id");
    expect(noToken.status).toBe(401);
    for (const ttl of ["0", "21601", "abc"]) {
      const bad = await httpRequest(config.imdsPort, "PUT", "/latest/api/token", {
        "X-aws-ec2-metadata-token-ttl-seconds": ttl,
      });
      expect(bad.status).toBe(400);
    }
    const token = await httpRequest(config.imdsPort, "PUT", "/latest/api/token", {
      "X-aws-ec2-metadata-token-ttl-seconds": "21600",
    });
    expect(token.status).toBe(200);
    const get = (p: string) =>
      httpRequest(config.imdsPort, "GET", `/latest/${p}`, { "X-aws-ec2-metadata-token": token.body });
    expect((await get("meta-data/instance-id")).body).toBe(INSTANCE_ID);
    expect((await get("meta-data/placement/availability-zone")).body).toBe("us-east-1a");
    expect((await get("meta-data/placement/region")).body).toBe(REGION);
    expect((await get("meta-data/local-ipv4")).body).toBe("127.0.0.1");
    expect((await get("meta-data/iam/security-credentials/")).body).toBe(ROLE);
    const doc = JSON.parse((await get("dynamic/instance-identity/document")).body) as Record<string, string>;
    expect(doc).toMatchObject({ instanceId: INSTANCE_ID, region: REGION, accountId: ACCOUNT });
    // Another loopback address is another "host": not a registered instance, so IMDS has nothing for it.
    const ttl60 = { "X-aws-ec2-metadata-token-ttl-seconds": "60" };
    expect((await httpRequest(config.imdsPort, "PUT", "/latest/api/token", ttl60, "127.0.0.2")).status).toBe(404);
    expect(
      (
        await httpRequest(config.imdsPort, "GET", "/latest/meta-data/instance-id", {
          "X-aws-ec2-metadata-token": "forged",
        })
      ).status,
    ).toBe(401);
  });

  test("awscli takes its credentials from IMDSv2 (token first) and the endpoint knows who it is", async () => {
    const before = (await control.requests()).length;
    const id = JSON.parse(ok(aws(["sts", "get-caller-identity", "--output", "json"]))) as Record<string, string>;
    expect(id.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/${ROLE}/${INSTANCE_ID}`);
    expect(id.Account).toBe(ACCOUNT);
    const log = (await control.requests()).slice(before);
    const imds = log.filter((e) => e.service === "imds");
    expect(imds[0]).toMatchObject({ action: "GetToken", status: 200, sourceIp: "127.0.0.1" });
    expect(
      imds.some((e) => e.resources[0] === `/latest/meta-data/iam/security-credentials/${ROLE}` && e.status === 200),
    ).toBe(true);
    expect(imds.every((e) => e.status === 200)).toBe(true);
  });

  test("a slow IMDS (1.5 s an answer): awscli's defaults find no credentials, the node's IMDS settings do", async () => {
    await control.setImdsDelay(1500);
    try {
      const plain = aws(["sts", "get-caller-identity", "--output", "json"]);
      expect(plain.code).not.toBe(0);
      expect(plain.stderr).toMatch(/Unable to locate credentials/);
      const patient = aws(["sts", "get-caller-identity", "--output", "json"], { ...AWS_CLI_IMDS });
      expect(JSON.parse(ok(patient))).toMatchObject({ Account: ACCOUNT });
    } finally {
      await control.setImdsDelay(0);
    }
    expect(JSON.parse(ok(aws(["sts", "get-caller-identity", "--output", "json"])))).toMatchObject({ Account: ACCOUNT });
  });

  test("get-parameter --with-decryption returns the SecureString, and --output text prints exactly the value", () => {
    const out = ok(
      aws([
        "ssm",
        "get-parameter",
        "--name",
        `${PREFIX}/password`,
        "--with-decryption",
        "--query",
        "Parameter.Value",
        "--output",
        "text",
      ]),
    );
    expect(out).toBe(`${SECRET}\n`);
    const hidden = JSON.parse(
      ok(aws(["ssm", "get-parameter", "--name", `${PREFIX}/password`, "--output", "json"])),
    ) as {
      Parameter: { Type: string; Value: string; Version: number };
    };
    expect(hidden.Parameter.Type).toBe("SecureString");
    expect(hidden.Parameter.Value).not.toContain(SECRET);
    expect(hidden.Parameter.Value).toMatch(/^AQICAH[A-Za-z0-9+/=]+$/);
  });

  test("the cluster's key: SSM decrypts this stack's secrets for the node; KMS itself, another key or a write refuses", async () => {
    const get = (name: string) =>
      aws([
        "ssm",
        "get-parameter",
        "--name",
        name,
        "--with-decryption",
        "--query",
        "Parameter.Value",
        "--output",
        "text",
      ]);
    // Under another key (another stack's, in the same prefix): readable as ciphertext, not decryptable.
    const other = get(`${PREFIX}/under-another-key`);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toContain(`is not authorized to perform: kms:Decrypt on resource: ${OTHER_KEY_ARN}`);
    expect(other.stdout).not.toContain("other key");
    // The account's aws/ssm key lets every principal decrypt through SSM: what the stack's own key prevents.
    expect(ok(get(`${PREFIX}/under-aws-ssm`))).toBe("aws/ssm\n");
    // The ciphertext, taken to KMS directly with the right encryption context: the role may decrypt only via SSM.
    const blobOf = (name: string) => {
      const b64 = ok(aws(["ssm", "get-parameter", "--name", name, "--query", "Parameter.Value", "--output", "text"]));
      const file = path.join(dir, `${name.replace(/\W/g, "_")}.blob`);
      fs.writeFileSync(file, Buffer.from(b64.trim(), "base64"));
      return file;
    };
    const kmsDecrypt = (file: string, name: string) =>
      aws([
        "kms",
        "decrypt",
        "--ciphertext-blob",
        `fileb://${file}`,
        "--encryption-context",
        `PARAMETER_ARN=arn:aws:ssm:${REGION}:${ACCOUNT}:parameter${name}`,
        "--query",
        "Plaintext",
        "--output",
        "text",
      ]);
    const ours = blobOf(`${PREFIX}/password`);
    const direct = kmsDecrypt(ours, `${PREFIX}/password`);
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toContain(`is not authorized to perform: kms:Decrypt on resource: ${KEY_ARN}`);
    const managed = kmsDecrypt(blobOf(`${PREFIX}/under-aws-ssm`), `${PREFIX}/under-aws-ssm`);
    expect(managed.stderr).toContain("AccessDeniedException");
    // A node may not write a secret under the key either (no kms:Encrypt): its status is a plain String.
    const write = aws([
      "ssm",
      "put-parameter",
      "--name",
      `${PREFIX}/state/x`,
      "--type",
      "SecureString",
      "--key-id",
      KEY_ARN,
      "--value",
      "v",
    ]);
    expect(write.stderr).toContain(`is not authorized to perform: kms:Encrypt on resource: ${KEY_ARN}`);
    // The stand-in can say yes: a role allowed kms:Decrypt outright gets the plaintext, and only with the context
    // the ciphertext was made with. So the refusals above are the policy's, not the lab's.
    await control.putRole(ROLE, [
      JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          { Effect: "Allow", Action: ["ssm:GetParameter"], Resource: "*" },
          { Effect: "Allow", Action: ["kms:Decrypt"], Resource: KEY_ARN },
        ],
      }),
    ]);
    try {
      const plain = ok(kmsDecrypt(ours, `${PREFIX}/password`));
      expect(Buffer.from(plain.trim(), "base64").toString("utf8")).toBe(SECRET);
      expect(kmsDecrypt(ours, `${PREFIX}/plain`).stderr).toContain("InvalidCiphertextException");
    } finally {
      await control.putRole(ROLE, POLICIES);
    }
    const log = (await control.requests()).filter((e) => e.service === "kms" || e.action === "GetParameter");
    expect(log.some((e) => e.decision === "deny" && e.resources.includes(OTHER_KEY_ARN))).toBe(true);
  });

  test("a parameter outside the role's path is AccessDeniedException naming action and resource", () => {
    const r = aws(["ssm", "get-parameter", "--name", "/other/secret", "--with-decryption"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("AccessDeniedException");
    expect(r.stderr).toContain(
      `is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/other/secret`,
    );
    expect(r.stdout).not.toContain("not-yours");
    const denied = aws(["ssm", "get-parameter", "--name", `${PREFIX}/forbidden`]);
    expect(denied.stderr).toContain("with an explicit deny in an identity-based policy");
  });

  test("get-parameters reports missing names and refuses the whole call when one name is denied", () => {
    const both = JSON.parse(
      ok(aws(["ssm", "get-parameters", "--names", `${PREFIX}/plain`, `${PREFIX}/missing`, "--output", "json"])),
    ) as { Parameters: { Name: string; Value: string }[]; InvalidParameters: string[] };
    expect(both.Parameters.map((p) => [p.Name, p.Value])).toEqual([[`${PREFIX}/plain`, "hello"]]);
    expect(both.InvalidParameters).toEqual([`${PREFIX}/missing`]);
    const mixed = aws(["ssm", "get-parameters", "--names", `${PREFIX}/plain`, "/other/secret"]);
    expect(mixed.code).not.toBe(0);
    expect(mixed.stderr).toContain("AccessDeniedException");
    const missing = aws(["ssm", "get-parameter", "--name", `${PREFIX}/missing`]);
    expect(missing.stderr).toContain("ParameterNotFound");
  });

  test("a bad signature or an unknown key is refused as AWS refuses them", async () => {
    const creds = await imdsCredentials();
    const args = ["ssm", "get-parameter", "--name", `${PREFIX}/plain`];
    const good = {
      AWS_ACCESS_KEY_ID: creds.AccessKeyId,
      AWS_SECRET_ACCESS_KEY: creds.SecretAccessKey,
      AWS_SESSION_TOKEN: creds.Token,
    };
    expect(ok(aws(args, good))).toContain("hello");
    const tampered = aws(args, { ...good, AWS_SECRET_ACCESS_KEY: creds.SecretAccessKey.slice(0, -2) + "xx" });
    expect(tampered.code).not.toBe(0);
    expect(tampered.stderr).toContain("InvalidSignatureException");
    const unknown = aws(args, { ...good, AWS_ACCESS_KEY_ID: "ASIAUNKNOWNUNKNOWN00" });
    expect(unknown.stderr).toContain("UnrecognizedClientException");
    const noToken = aws(args, { AWS_ACCESS_KEY_ID: creds.AccessKeyId, AWS_SECRET_ACCESS_KEY: creds.SecretAccessKey });
    expect(noToken.stderr).toContain("UnrecognizedClientException");
  });

  test("put-parameter: create, ParameterAlreadyExists without --overwrite, new version with it; denied elsewhere", async () => {
    const name = `${PREFIX}/state/leader`;
    const v1 = JSON.parse(
      ok(aws(["ssm", "put-parameter", "--name", name, "--type", "String", "--value", "node-a", "--output", "json"])),
    ) as {
      Version: number;
    };
    expect(v1.Version).toBe(1);
    const again = aws(["ssm", "put-parameter", "--name", name, "--type", "String", "--value", "node-b"]);
    expect(again.stderr).toContain("ParameterAlreadyExists");
    const v2 = JSON.parse(
      ok(
        aws([
          "ssm",
          "put-parameter",
          "--name",
          name,
          "--type",
          "String",
          "--value",
          "node-b",
          "--overwrite",
          "--output",
          "json",
        ]),
      ),
    ) as { Version: number };
    expect(v2.Version).toBe(2);
    expect((await control.parameters()).find((p) => p.name === name)).toMatchObject({ value: "node-b", version: 2 });
    const outside = aws([
      "ssm",
      "put-parameter",
      "--name",
      `${PREFIX}/password`,
      "--type",
      "SecureString",
      "--value",
      "x",
      "--overwrite",
    ]);
    expect(outside.stderr).toContain("is not authorized to perform: ssm:PutParameter");
  });

  test("cloudwatch put-metric-data lands in the endpoint's metrics, in the stack's namespace only", async () => {
    const other = aws([
      "cloudwatch",
      "put-metric-data",
      "--namespace",
      "AnotherStacksMetrics",
      "--metric-name",
      "used_memory",
      "--value",
      "1",
    ]);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toContain("is not authorized to perform: cloudwatch:PutMetricData");
    ok(
      aws([
        "cloudwatch",
        "put-metric-data",
        "--namespace",
        METRICS_NAMESPACE,
        "--metric-name",
        "used_memory",
        "--value",
        "42",
        "--unit",
        "Bytes",
        "--dimensions",
        "Node=node-a",
      ]),
    );
    const m = (await control.metrics()).find((d) => d.metricName === "used_memory");
    expect(m).toMatchObject({
      namespace: METRICS_NAMESPACE,
      value: 42,
      unit: "Bytes",
      instanceId: INSTANCE_ID,
      dimensions: [{ name: "Node", value: "node-a" }],
    });
  });

  // ---------------------------------------------------------------- S3, as the backups use it

  const s3url = (key: string) => `s3://${BUCKET}/${key}`;
  const sha = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

  test("s3 cp up and down: one PUT and a multipart upload, stored SSE-KMS with the bucket's key, bytes intact", async () => {
    const small = path.join(dir, "small.rdb");
    const big = path.join(dir, "big.rdb");
    fs.writeFileSync(small, randomBytes(1000));
    // Above awscli's 8 MiB multipart threshold: three parts, the last one short.
    fs.writeFileSync(big, randomBytes(19 * 1024 * 1024 + 123));
    const before = (await control.requests()).length;
    ok(aws(["s3", "cp", small, s3url(`${BACKUP_PREFIX}/backups/b1/shard 0.rdb`), "--only-show-errors"]));
    ok(aws(["s3", "cp", big, s3url(`${BACKUP_PREFIX}/backups/b1/shard-1.rdb`), "--only-show-errors"]));
    const actions = (await control.requests())
      .slice(before)
      .filter((e) => e.service === "s3")
      .map((e) => e.action);
    expect(actions).toEqual(
      expect.arrayContaining(["PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"]),
    );
    const view = await control.bucket(BUCKET);
    const one = view.objects[`${BACKUP_PREFIX}/backups/b1/shard 0.rdb`];
    const multi = view.objects[`${BACKUP_PREFIX}/backups/b1/shard-1.rdb`];
    expect(one).toMatchObject({ size: 1000, kmsKeyArn: KEY_ARN });
    expect(multi).toMatchObject({ size: 19 * 1024 * 1024 + 123, kmsKeyArn: KEY_ARN });
    expect(multi.etag).toMatch(/-3$/);
    expect(sha(one.path)).toBe(sha(small));
    expect(sha(multi.path)).toBe(sha(big));
    expect(view.uploads).toBe(0);
    // Down again: the big one by ranged GETs in parallel, as awscli fetches large objects.
    const back = path.join(dir, "back.rdb");
    ok(aws(["s3", "cp", s3url(`${BACKUP_PREFIX}/backups/b1/shard-1.rdb`), back, "--only-show-errors"]));
    expect(sha(back)).toBe(sha(big));
    const head = JSON.parse(
      ok(aws(["s3api", "head-object", "--bucket", BUCKET, "--key", `${BACKUP_PREFIX}/backups/b1/shard 0.rdb`])),
    ) as Record<string, unknown>;
    expect(head).toMatchObject({ ContentLength: 1000, ServerSideEncryption: "aws:kms", SSEKMSKeyId: KEY_ARN });
    // Listing is allowed below the stack's prefix only.
    const listed = ok(aws(["s3", "ls", s3url(`${BACKUP_PREFIX}/backups/b1/`)]));
    expect(listed).toMatch(/shard 0\.rdb/);
    expect(listed).toMatch(/shard-1\.rdb/);
    // Versioning keeps what an overwrite replaced.
    ok(aws(["s3", "cp", small, s3url(`${BACKUP_PREFIX}/backups/b1/shard-1.rdb`), "--only-show-errors"]));
    expect((await control.bucket(BUCKET)).noncurrent[`${BACKUP_PREFIX}/backups/b1/shard-1.rdb`]).toHaveLength(1);
  });

  test("S3 refusals: another stack's prefix, a listing outside the prefix, plain HTTP, and a role without the key", async () => {
    const file = path.join(dir, "x.rdb");
    fs.writeFileSync(file, "REDIS0011");
    const other = aws(["s3", "cp", file, s3url("redis/other/backups/b1/shard-0.rdb")]);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/AccessDenied/);
    const list = aws(["s3", "ls", s3url("redis/")]);
    expect(list.code).not.toBe(0);
    expect(list.stderr).toMatch(/AccessDenied/);
    // The bucket policy refuses plain HTTP even though the role's policy allows the call.
    const plain = aws(
      ["s3", "cp", file, s3url(`${BACKUP_PREFIX}/plain.rdb`)],
      {},
      `http://127.0.0.1:${config.httpPort}`,
    );
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/AccessDenied/);
    const log = (await control.requests()).filter((e) => e.service === "s3" && e.decision === "deny");
    expect(log.some((e) => e.resources[0] === `arn:aws:s3:::${BUCKET}/${BACKUP_PREFIX}/plain.rdb`)).toBe(true);
    // Without kms:GenerateDataKey through S3 an SSE-KMS bucket refuses the upload, and the message names the key.
    await control.putRole(ROLE, [
      JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          { Effect: "Allow", Action: ["s3:PutObject", "s3:GetObject"], Resource: `arn:aws:s3:::${BUCKET}/*` },
        ],
      }),
    ]);
    try {
      const nokey = aws(["s3", "cp", file, s3url(`${BACKUP_PREFIX}/nokey.rdb`)]);
      expect(nokey.code).not.toBe(0);
      expect(nokey.stderr).toMatch(/AccessDenied/);
      const denied = (await control.requests()).filter((e) => e.decision === "deny").pop();
      expect(denied?.resources).toEqual([`arn:aws:s3:::${BUCKET}/${BACKUP_PREFIX}/nokey.rdb`]);
    } finally {
      await control.putRole(ROLE, POLICIES);
    }
    expect(Object.keys((await control.bucket(BUCKET)).objects).some((k) => /plain|nokey|other/.test(k))).toBe(false);
  });

  test("a restarted endpoint keeps parameters the nodes wrote and the credentials it issued", async () => {
    const creds = await imdsCredentials();
    const stateDir = path.join(dir, "state");
    await stopAwsEndpoint(stateDir);
    ({ control } = await startAwsEndpoint({ stateDir, config }));
    expect((await control.parameters()).find((p) => p.name === `${PREFIX}/state/leader`)?.value).toBe("node-b");
    const env2 = {
      AWS_ACCESS_KEY_ID: creds.AccessKeyId,
      AWS_SECRET_ACCESS_KEY: creds.SecretAccessKey,
      AWS_SESSION_TOKEN: creds.Token,
    };
    expect(
      ok(
        aws(
          [
            "ssm",
            "get-parameter",
            "--name",
            `${PREFIX}/state/leader`,
            "--query",
            "Parameter.Value",
            "--output",
            "text",
          ],
          env2,
        ),
      ),
    ).toBe("node-b\n");
  });

  test("setAptReachable(false) makes the apt port drop connections; true restores it", async () => {
    const url = "/dists/bookworm/InRelease";
    expect(await httpRequest(config.aptPort, "GET", url)).toEqual({ status: 200, body: "Origin: lab\n" });
    await control.setAptReachable(false);
    await expect(httpRequest(config.aptPort, "GET", url)).rejects.toThrow(/ECONNRESET|socket hang up/);
    await control.setAptReachable(true);
    expect((await httpRequest(config.aptPort, "GET", url)).status).toBe(200);
    expect((await httpRequest(config.aptPort, "GET", "/../../etc/passwd")).status).toBe(404);
  });

  test("the request log records every answer and never a secret, token or signature", async () => {
    const creds = await imdsCredentials();
    const raw = fs.readFileSync(path.join(dir, "state", "requests.log"), "utf8");
    for (const secret of [SECRET, "not-yours", creds.SecretAccessKey, creds.Token, "Signature="]) {
      expect(raw).not.toContain(secret);
    }
    const log = await control.requests();
    expect(
      log.some((e) => e.service === "ssm" && e.action === "GetParameter" && e.decision === "deny" && e.status === 400),
    ).toBe(true);
    expect(log.some((e) => e.service === "ssm" && e.action === "PutParameter" && e.decision === "allow")).toBe(true);
    expect(log.some((e) => e.service === "apt" && e.action === "connect" && e.decision === "deny")).toBe(true);
    for (const e of log)
      expect(Object.keys(e).sort()).toEqual(
        expect.arrayContaining(["time", "sourceIp", "service", "action", "resources", "decision", "status"]),
      );
  });
});
