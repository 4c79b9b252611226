/**
 * Pure parts of the lab's AWS endpoint: the IAM identity-policy evaluator, the SigV4 verifier (against AWS's
 * published test-suite vectors and a request signed by the nodes' own botocore), and the query-protocol decoder.
 */
import {
  actionMatches,
  authorize,
  authorizeAll,
  authorizeWithResourcePolicy,
  conditionHolds,
  PolicyDocument,
  resourceMatches,
  ssmParameterArn,
  statementsForPrincipal,
} from "../../lab/aws/iam";
import { bucketAndKey, listObjectsV2, parseCompleteParts, parseRange, S3Error } from "../../lab/aws/s3";
import type { BucketState } from "../../lab/aws/state";
import { unflattenQuery, toXml } from "../../lab/aws/protocols";
import {
  canonicalQuery,
  canonicalUri,
  KnownKey,
  parseAmzDate,
  signRequest,
  SignableRequest,
  verify,
  VerifyOptions,
} from "../../lab/aws/sigv4";
import { nodeRolePolicy } from "../../components/ec2/iam";
import { METRICS_NAMESPACE } from "../../components/monitoring/metrics";

const ARN = (name: string) => ssmParameterArn("us-east-1", "123456789012", name);

/** The node role's policy as the stack renders it (components/ec2/iam.ts), through JSON as AWS receives it. */
const KEY = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-0000-4000-8000-0123456789ab";
const STACK_POLICY = JSON.parse(
  JSON.stringify(nodeRolePolicy("us-east-1", "123456789012", "/redis/prod", "/redis/prod/status", KEY)),
) as PolicyDocument;

describe("IAM evaluator", () => {
  test("SSM parameter ARNs: `parameter` + name, a slash added only when the name lacks one", () => {
    expect(ARN("/redis/prod/password")).toBe("arn:aws:ssm:us-east-1:123456789012:parameter/redis/prod/password");
    expect(ARN("plain")).toBe("arn:aws:ssm:us-east-1:123456789012:parameter/plain");
  });

  test("the stack's rendered node policy: reads below its prefix, status writes below the status path, nothing else", () => {
    const can = (action: string, name: string) => authorize([STACK_POLICY], { action, resource: ARN(name) }).decision;
    expect(can("ssm:GetParameter", "/redis/prod/password")).toBe("allow");
    expect(can("ssm:GetParameters", "/redis/prod/a/b")).toBe("allow");
    expect(can("ssm:GetParameter", "/redis/production/password")).toBe("implicitDeny");
    expect(can("ssm:GetParameter", "/redis/prod")).toBe("implicitDeny");
    expect(can("ssm:GetParametersByPath", "/redis/prod/x")).toBe("implicitDeny");
    // A node may publish its status, and may write nothing else of the stack (not its passwords).
    expect(can("ssm:PutParameter", "/redis/prod/status/shard0-0")).toBe("allow");
    expect(can("ssm:PutParameter", "/redis/prod/password")).toBe("implicitDeny");
    expect(can("ssm:PutParameter", "/redis/prod/settings")).toBe("implicitDeny");
    expect(can("ssm:PutParameter", "/redis/prod/statusx")).toBe("implicitDeny");
  });

  test("the cluster's key: the node role decrypts through SSM only, and only this stack's parameters", () => {
    const decrypt = (context: Record<string, string>, key = KEY) =>
      authorize([STACK_POLICY], { action: "kms:Decrypt", resource: key, context }).decision;
    const viaSsm = { "kms:ViaService": "ssm.us-east-1.amazonaws.com" };
    const ours = { "kms:EncryptionContext:PARAMETER_ARN": ARN("/redis/prod/admin-password") };
    expect(decrypt({ ...viaSsm, ...ours })).toBe("allow");
    expect(decrypt({ ...viaSsm, ...ours }, KEY.replace(/ab$/, "ac"))).toBe("implicitDeny");
    // Without SSM (a direct KMS call on the ciphertext), through another service, or another stack's parameter.
    expect(decrypt(ours)).toBe("implicitDeny");
    expect(decrypt({ "kms:ViaService": "s3.us-east-1.amazonaws.com", ...ours })).toBe("implicitDeny");
    expect(decrypt({ ...viaSsm, "kms:EncryptionContext:PARAMETER_ARN": ARN("/redis/production/x") })).toBe(
      "implicitDeny",
    );
    expect(decrypt(viaSsm)).toBe("implicitDeny");
    // Nothing else on the key: no encrypting, no re-keying, no grants.
    for (const action of ["kms:Encrypt", "kms:ReEncryptFrom", "kms:CreateGrant", "kms:GenerateDataKey"])
      expect(authorize([STACK_POLICY], { action, resource: KEY, context: { ...viaSsm, ...ours } }).decision).toBe(
        "implicitDeny",
      );
  });

  test("metrics: only into the stack's namespace (the cloudwatch:namespace condition)", () => {
    const put = (namespace: string | undefined) =>
      authorize([STACK_POLICY], {
        action: "cloudwatch:PutMetricData",
        resource: "*",
        context: namespace === undefined ? {} : { "cloudwatch:namespace": namespace },
      }).decision;
    expect(put(METRICS_NAMESPACE)).toBe("allow");
    expect(put("AWS/EC2")).toBe("implicitDeny");
    expect(put(undefined)).toBe("implicitDeny");
  });

  test("fails closed: a Deny whose condition it cannot evaluate denies (and says why); such an Allow grants nothing", () => {
    const told: string[] = [];
    const unknownDeny: PolicyDocument = {
      Statement: [
        { Effect: "Allow", Action: "ssm:GetParameter", Resource: "*" },
        {
          Sid: "OnlyFromTheVpc",
          Effect: "Deny",
          Action: "ssm:GetParameter",
          Resource: "*",
          Condition: { StringNotEqualsIfExists: { "aws:SourceVpc": "vpc-0a" } },
        },
      ],
    };
    expect(authorize([unknownDeny], { action: "ssm:GetParameter", resource: ARN("/x") }, (m) => told.push(m))).toEqual({
      decision: "explicitDeny",
      statement: "OnlyFromTheVpc (condition not evaluated)",
    });
    expect(told.join("\n")).toMatch(/OnlyFromTheVpc \(Deny\) has an unsupported Condition .*denies \(fails closed\)/);
    const unknownAllow: PolicyDocument = {
      Statement: {
        Effect: "Allow",
        Action: "ssm:GetParameter",
        Resource: "*",
        Condition: { IpAddress: { "aws:SourceIp": "10.0.0.0/8" } },
      },
    };
    expect(authorize([unknownAllow], { action: "ssm:GetParameter", resource: ARN("/x") }).decision).toBe(
      "implicitDeny",
    );
  });

  test("actions match case-insensitively with * and ?; resources case-sensitively", () => {
    expect(actionMatches("ssm:Get*", "ssm:GetParameter")).toBe(true);
    expect(actionMatches("SSM:getparameter", "ssm:GetParameter")).toBe(true);
    expect(actionMatches("ssm:GetParameter?", "ssm:GetParameters")).toBe(true);
    expect(actionMatches("ssm:GetParameter?", "ssm:GetParameter")).toBe(false);
    expect(actionMatches("*", "cloudwatch:PutMetricData")).toBe(true);
    expect(actionMatches("ssm:Get.*", "ssm:GetX")).toBe(false); // regex metacharacters are literal
    expect(resourceMatches("arn:aws:ssm:*:*:parameter/Redis/*", "arn:aws:ssm:us-east-1:1:parameter/redis/x")).toBe(
      false,
    );
    expect(resourceMatches("arn:aws:ssm:*:*:parameter/redis/?", "arn:aws:ssm:us-east-1:1:parameter/redis/x")).toBe(
      true,
    );
  });

  test("explicit Deny wins over any Allow, in any policy, in any order", () => {
    const deny: PolicyDocument = {
      Statement: [{ Sid: "NoPassword", Effect: "Deny", Action: "ssm:*", Resource: ARN("/redis/prod/password") }],
    };
    const allowAll: PolicyDocument = { Statement: { Effect: "Allow", Action: "*", Resource: "*" } };
    for (const policies of [
      [deny, allowAll],
      [allowAll, deny],
    ]) {
      expect(authorize(policies, { action: "ssm:GetParameter", resource: ARN("/redis/prod/password") })).toEqual({
        decision: "explicitDeny",
        statement: "NoPassword",
      });
      expect(authorize(policies, { action: "ssm:GetParameter", resource: ARN("/redis/prod/other") }).decision).toBe(
        "allow",
      );
    }
  });

  test("NotAction and NotResource", () => {
    const p: PolicyDocument = {
      Statement: [
        { Effect: "Allow", NotAction: ["ssm:Delete*", "ssm:Put*"], Resource: "*" },
        { Effect: "Deny", Action: "ssm:GetParameter", NotResource: [ARN("/public/*")] },
      ],
    };
    const d = (action: string, name: string) => authorize([p], { action, resource: ARN(name) }).decision;
    expect(d("ssm:GetParameters", "/x")).toBe("allow");
    expect(d("ssm:PutParameter", "/x")).toBe("implicitDeny");
    expect(d("ssm:GetParameter", "/x")).toBe("explicitDeny");
    expect(d("ssm:GetParameter", "/public/x")).toBe("allow");
  });

  test("malformed statements (no Resource, unknown Effect, neither Action nor NotAction) never match", () => {
    const p: PolicyDocument = {
      Statement: [
        { Effect: "Allow", Action: "*" },
        { Effect: "allow", Action: "*", Resource: "*" },
        { Effect: "Allow", Resource: "*" },
      ],
    };
    expect(authorize([p], { action: "ssm:GetParameter", resource: ARN("/x") }).decision).toBe("implicitDeny");
  });

  test("Conditions: String operators on the request context; an unsupported operator makes an Allow not match and a Deny deny", () => {
    const warnings: string[] = [];
    const p: PolicyDocument = {
      Statement: [
        {
          Effect: "Allow",
          Action: "cloudwatch:PutMetricData",
          Resource: "*",
          Condition: { StringEquals: { "cloudwatch:namespace": "Redis" } },
        },
        {
          Effect: "Allow",
          Action: "ssm:GetParameter",
          Resource: "*",
          Condition: { IpAddress: { "aws:SourceIp": "10.0.0.0/8" } },
        },
        {
          Effect: "Deny",
          Action: "ssm:GetParameter",
          Resource: "*",
          Condition: { DateGreaterThan: { "aws:CurrentTime": "2020-01-01T00:00:00Z" } },
        },
      ],
    };
    const put = (ns: string) =>
      authorize([p], { action: "cloudwatch:PutMetricData", resource: "*", context: { "cloudwatch:namespace": ns } })
        .decision;
    expect(put("Redis")).toBe("allow");
    expect(put("Other")).toBe("implicitDeny");
    expect(authorize([p], { action: "ssm:GetParameter", resource: ARN("/x") }, (m) => warnings.push(m)).decision).toBe(
      "explicitDeny",
    );
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain("IpAddress");
    expect(warnings[1]).toMatch(/DateGreaterThan.*denies \(fails closed\)/);
  });

  test("several resources: one refusal refuses the call and names the resource", () => {
    const r = authorizeAll([STACK_POLICY], "ssm:GetParameters", [
      ARN("/redis/prod/a"),
      ARN("/other/b"),
      ARN("/redis/prod/c"),
    ]);
    expect(r).toEqual({ ok: false, resource: ARN("/other/b"), result: { decision: "implicitDeny" } });
    expect(authorizeAll([STACK_POLICY], "ssm:GetParameters", [ARN("/redis/prod/a")])).toEqual({ ok: true });
  });
});

// ------------------------------------------------------------------ SigV4

/** AWS's SigV4 test suite credentials and clock (docs.aws.amazon.com, "Signature Version 4 test suite"). */
const SUITE_KEY: KnownKey = { secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };
const SUITE_NOW = Date.UTC(2015, 7, 30, 12, 36, 0);
const suiteOpts = (over: Partial<VerifyOptions> = {}): VerifyOptions => ({
  now: SUITE_NOW,
  region: "us-east-1",
  service: "service",
  lookup: (id) => (id === "AKIDEXAMPLE" ? SUITE_KEY : undefined),
  ...over,
});

function suiteRequest(method: string, query: string, signature: string): SignableRequest {
  return {
    method,
    path: "/",
    query,
    body: Buffer.alloc(0),
    headers: [
      ["Host", "example.amazonaws.com"],
      ["X-Amz-Date", "20150830T123600Z"],
      [
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, " +
          `SignedHeaders=host;x-amz-date, Signature=${signature}`,
      ],
    ],
  };
}

describe("SigV4 verifier", () => {
  test("accepts AWS's test-suite vectors: get-vanilla, post-vanilla, get-vanilla-query-order-key-case", () => {
    const vectors: [string, string, string][] = [
      ["GET", "", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"],
      ["POST", "", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"],
      ["GET", "Param2=value2&Param1=value1", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"],
    ];
    for (const [method, query, sig] of vectors) {
      const r = verify(suiteRequest(method, query, sig), suiteOpts());
      expect(r).toMatchObject({ ok: true, auth: { accessKeyId: "AKIDEXAMPLE", service: "service" } });
    }
  });

  test("accepts an SSM call signed by the nodes' botocore (Debian awscli 2.9.19), session token included", () => {
    // Produced with botocore.auth.SigV4Auth at 2024-05-01T12:00:00Z; User-Agent is sent but not signed.
    const req: SignableRequest = {
      method: "POST",
      path: "/",
      query: "",
      body: Buffer.from('{"Name": "/redis/test/password", "WithDecryption": true}'),
      headers: [
        ["Host", "ssm.us-east-1.amazonaws.com"],
        ["X-Amz-Target", "AmazonSSM.GetParameter"],
        ["Content-Type", "application/x-amz-json-1.1"],
        ["User-Agent", "aws-cli/2.9.19"],
        ["X-Amz-Date", "20240501T120000Z"],
        ["X-Amz-Security-Token", "tokentoken/with+chars="],
        [
          "Authorization",
          "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEEXAMPLE01/20240501/us-east-1/ssm/aws4_request, " +
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, " +
            "Signature=877a7f0fb04349faf2163fe3e919837ea7c8db0afb85cadc28616569c0c84eb2",
        ],
      ],
    };
    const key: KnownKey = {
      secretAccessKey: "secretsecretsecretsecretsecretsecret0001",
      sessionToken: "tokentoken/with+chars=",
    };
    const opts: VerifyOptions = {
      now: Date.UTC(2024, 4, 1, 12, 2, 0),
      region: "us-east-1",
      service: "ssm",
      lookup: (id) => (id === "ASIAEXAMPLEEXAMPLE01" ? key : undefined),
    };
    expect(verify(req, opts).ok).toBe(true);
    // The body is signed: one changed byte and the signature no longer matches.
    const tampered = { ...req, body: Buffer.from('{"Name": "/redis/test/passwore", "WithDecryption": true}') };
    expect(verify(tampered, opts)).toMatchObject({ ok: false, failure: { kind: "badSignature" } });
    // A user agent is not signed, so proxies may rewrite it.
    const ua = {
      ...req,
      headers: req.headers.map(([k, v]): [string, string] => [k, k === "User-Agent" ? "other" : v]),
    };
    expect(verify(ua, opts).ok).toBe(true);
    // The session token must be the one issued with the key.
    const wrongToken = { ...req, headers: req.headers.filter(([k]) => k !== "X-Amz-Security-Token") };
    expect(verify(wrongToken, opts)).toMatchObject({ ok: false, failure: { kind: "unknownKey" } });
    // Issued credentials stop working at their Expiration, as AWS's do.
    const expired = { ...opts, lookup: () => ({ ...key, expiresAt: Date.UTC(2024, 4, 1, 12, 1, 0) }) };
    expect(verify(req, expired)).toMatchObject({ ok: false, failure: { kind: "expiredToken" } });
  });

  test("refuses a wrong signature, an unknown key, a skewed clock and a foreign scope, with AWS's messages", () => {
    const good = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
    const bad = verify(suiteRequest("GET", "", good.replace(/^5/, "6")), suiteOpts());
    expect(bad).toMatchObject({ ok: false, failure: { kind: "badSignature" } });
    if (!bad.ok) expect(bad.failure.message).toMatch(/^The request signature we calculated does not match/);
    expect(verify(suiteRequest("GET", "", good), suiteOpts({ lookup: () => undefined }))).toMatchObject({
      ok: false,
      failure: { kind: "unknownKey", message: "The security token included in the request is invalid." },
    });
    const late = verify(suiteRequest("GET", "", good), suiteOpts({ now: SUITE_NOW + 5 * 60 * 1000 + 1000 }));
    expect(late).toMatchObject({
      ok: false,
      failure: {
        kind: "skew",
        message: "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T124101Z - 5 min.)",
      },
    });
    expect(verify(suiteRequest("GET", "", good), suiteOpts({ now: SUITE_NOW - 5 * 60 * 1000 - 1000 }))).toMatchObject({
      failure: { kind: "skew" },
    });
    expect(verify(suiteRequest("GET", "", good), suiteOpts({ now: SUITE_NOW + 4 * 60 * 1000 })).ok).toBe(true);
    expect(verify(suiteRequest("GET", "", good), suiteOpts({ region: "eu-west-1" }))).toMatchObject({
      failure: { kind: "badScope" },
    });
    expect(verify(suiteRequest("GET", "", good), suiteOpts({ service: "ssm" }))).toMatchObject({
      failure: { kind: "badScope" },
    });
    const noAuth = {
      ...suiteRequest("GET", "", good),
      headers: [["Host", "example.amazonaws.com"]] as [string, string][],
    };
    expect(verify(noAuth, suiteOpts())).toMatchObject({ failure: { kind: "missing" } });
  });

  test("host must be signed, and a request signed by signRequest round-trips", () => {
    const base: SignableRequest = {
      method: "POST",
      path: "/",
      query: "",
      body: Buffer.from("Action=GetCallerIdentity&Version=2011-06-15"),
      headers: [
        ["Host", "sts.us-east-1.amazonaws.com"],
        ["Content-Type", "application/x-www-form-urlencoded; charset=utf-8"],
      ],
    };
    const creds = { accessKeyId: "ASIAX", secretAccessKey: "s3cret", sessionToken: "tok" };
    const now = Date.UTC(2024, 0, 2, 3, 4, 5);
    const signed = signRequest(base, creds, "us-east-1", "sts", now);
    const opts: VerifyOptions = {
      now,
      region: "us-east-1",
      service: "sts",
      lookup: () => ({ secretAccessKey: "s3cret", sessionToken: "tok" }),
    };
    expect(verify(signed, opts).ok).toBe(true);
    const hostless = signRequest({ ...base, headers: base.headers.slice(1) }, creds, "us-east-1", "sts", now);
    expect(verify(hostless, opts)).toMatchObject({ ok: false, failure: { kind: "incomplete" } });
  });

  test("canonical forms: dot segments, double-encoded paths, sorted re-encoded queries, amz dates", () => {
    expect(canonicalUri("")).toBe("/");
    expect(canonicalUri("/a/./b/../c/")).toBe("/a/c/");
    expect(canonicalUri("/a%20b")).toBe("/a%2520b");
    expect(canonicalQuery("b=2&a=2&a=1&c")).toBe("a=1&a=2&b=2&c=");
    expect(canonicalQuery("k=a%2Fb%20c")).toBe("k=a%2Fb%20c");
    expect(parseAmzDate("20150830T123600Z")).toBe(SUITE_NOW);
    expect(parseAmzDate("2015-08-30T12:36:00Z")).toBeUndefined();
  });
});

describe("query protocol", () => {
  test("flattened members become the nested shape JSON services receive", () => {
    const input = unflattenQuery({
      Action: "PutMetricData",
      Version: "2010-08-01",
      Namespace: "Redis",
      "MetricData.member.1.MetricName": "used_memory",
      "MetricData.member.1.Value": "42",
      "MetricData.member.1.Dimensions.member.1.Name": "Node",
      "MetricData.member.1.Dimensions.member.1.Value": "a",
      "MetricData.member.2.MetricName": "ops",
      "MetricData.member.2.Values.member.1": "1",
      "MetricData.member.2.Values.member.2": "2",
      "MetricData.member.2.StatisticValues.Sum": "3",
    });
    expect(input).toEqual({
      Namespace: "Redis",
      MetricData: [
        { MetricName: "used_memory", Value: "42", Dimensions: [{ Name: "Node", Value: "a" }] },
        { MetricName: "ops", Values: ["1", "2"], StatisticValues: { Sum: "3" } },
      ],
    });
  });

  test("results serialise as elements, lists as members, text escaped", () => {
    expect(toXml({ Arn: "a<b>&", List: ["x", "y"], Skip: undefined })).toBe(
      "<Arn>a&lt;b&gt;&amp;</Arn><List><member>x</member><member>y</member></List>",
    );
  });
});

// ------------------------------------------------------------------ S3

describe("S3 signing, as Debian's awscli 2.9.19 signs it", () => {
  // Captured from `aws s3 cp` (awscli 2.9.19) against a recording server, with static credentials
  // AKIDEXAMPLE / "secret" / token "tok": the path is signed as sent, the payload as x-amz-content-sha256 says.
  const key: KnownKey = { secretAccessKey: "secret", sessionToken: "tok" };
  const opts = (_amzDate: string): VerifyOptions => ({
    now: Date.UTC(2026, 11, 5, 5, 4, 12),
    region: "us-east-1",
    service: "s3",
    lookup: (id) => (id === "AKIDEXAMPLE" ? key : undefined),
  });
  const put: SignableRequest = {
    method: "PUT",
    path: "/bkt/p/x%20y/small.bin",
    query: "",
    body: Buffer.alloc(0),
    headers: [
      ["Host", "127.0.0.1:18443"],
      ["Content-MD5", "aVOpmy2OjR7uos5wSwZWnw=="],
      ["Content-Type", "application/octet-stream"],
      ["X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD"],
      ["X-Amz-Date", "20261205T050411Z"],
      ["X-Amz-Security-Token", "tok"],
      ["Expect", "100-continue"],
      [
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261205/us-east-1/s3/aws4_request, " +
          "SignedHeaders=content-md5;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, " +
          "Signature=9b182a30156d5e5f38ddd99c736e2fcff2ef582494605acf2d53326df47add4d",
      ],
    ],
  };

  test("an unsigned-payload PutObject and a CreateMultipartUpload verify; their tampered copies do not", () => {
    expect(verify(put, opts("20261205T050411Z")).ok).toBe(true);
    const create: SignableRequest = {
      method: "POST",
      path: "/bkt/p/big.bin",
      query: "uploads",
      body: Buffer.alloc(0),
      headers: [
        ["Host", "127.0.0.1:18443"],
        ["Content-Type", "application/octet-stream"],
        ["X-Amz-Content-SHA256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
        ["X-Amz-Date", "20261205T050412Z"],
        ["X-Amz-Security-Token", "tok"],
        [
          "Authorization",
          "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261205/us-east-1/s3/aws4_request, " +
            "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, " +
            "Signature=8849f8e995a92be9695d2b9bb49b7aaddc3845a882ea06345466295fb143731d",
        ],
      ],
    };
    expect(verify(create, opts("20261205T050412Z")).ok).toBe(true);
    // Another key under the same signature, another MD5, or no payload hash at all: refused.
    expect(verify({ ...put, path: "/bkt/p/x%20z/small.bin" }, opts("")).ok).toBe(false);
    const md5 = put.headers.map(([k, v]): [string, string] => [k, k === "Content-MD5" ? "AAAA" : v]);
    expect(verify({ ...put, headers: md5 }, opts("")).ok).toBe(false);
    const noHash = put.headers.filter(([k]) => k !== "X-Amz-Content-SHA256");
    expect(verify({ ...put, headers: noHash }, opts(""))).toMatchObject({ ok: false, failure: { kind: "incomplete" } });
  });
});

describe("S3 request parsing", () => {
  test("bucket and key from virtual-hosted and path-style requests, keys percent-decoded", () => {
    expect(bucketAndKey("b-1.s3.amazonaws.com", "/p/x%20y.rdb")).toEqual({ bucket: "b-1", key: "p/x y.rdb" });
    expect(bucketAndKey("b-1.s3.us-east-1.amazonaws.com:443", "/p/k")).toEqual({ bucket: "b-1", key: "p/k" });
    expect(bucketAndKey("s3.us-east-1.amazonaws.com", "/b-1/p/k")).toEqual({ bucket: "b-1", key: "p/k" });
    expect(bucketAndKey("10.0.0.2", "/b-1")).toEqual({ bucket: "b-1", key: "" });
    expect(() => bucketAndKey("10.0.0.2", "/b-1/%E0%A4%A")).toThrow(S3Error);
  });

  test("Range headers as S3 reads them", () => {
    expect(parseRange(undefined, 10)).toBeUndefined();
    expect(parseRange("bytes=0-3", 10)).toEqual({ start: 0, end: 3 });
    expect(parseRange("bytes=5-", 10)).toEqual({ start: 5, end: 9 });
    expect(parseRange("bytes=-4", 10)).toEqual({ start: 6, end: 9 });
    expect(parseRange("bytes=8-100", 10)).toEqual({ start: 8, end: 9 });
    expect(() => parseRange("bytes=10-12", 10)).toThrow(/not satisfiable/);
  });

  test("CompleteMultipartUpload's part list, quotes and all; an empty list is malformed", () => {
    const body =
      "<CompleteMultipartUpload><Part><ETag>&quot;abc&quot;</ETag><PartNumber>1</PartNumber></Part>" +
      '<Part><PartNumber>2</PartNumber><ETag>"def"</ETag></Part></CompleteMultipartUpload>';
    expect(parseCompleteParts(body)).toEqual([
      { partNumber: 1, etag: "abc" },
      { partNumber: 2, etag: "def" },
    ]);
    expect(() => parseCompleteParts("<CompleteMultipartUpload/>")).toThrow(/MalformedXML|well-formed/);
  });

  test("ListObjectsV2: prefix, delimiter (common prefixes), max-keys and a continuation token", () => {
    const obj = (k: string) => ({ file: k, size: 1, etag: "e", lastModified: 0, versionId: "null", contentType: "x" });
    const b: BucketState = {
      versioning: false,
      noncurrent: {},
      objects: Object.fromEntries(["p/a/1", "p/a/2", "p/b/1", "p/c", "q/x"].map((k) => [k, obj(k)])),
    };
    const page = listObjectsV2(b, "bk", new URLSearchParams("list-type=2&prefix=p/&delimiter=/"));
    expect(page).toContain("<Key>p/c</Key>");
    expect(page).toContain("<CommonPrefixes><Prefix>p/a/</Prefix></CommonPrefixes>");
    expect(page).toContain("<CommonPrefixes><Prefix>p/b/</Prefix></CommonPrefixes>");
    expect(page).not.toContain("q/x");
    const first = listObjectsV2(b, "bk", new URLSearchParams("list-type=2&prefix=p/&max-keys=2"));
    expect(first).toContain("<IsTruncated>true</IsTruncated>");
    const token = /<NextContinuationToken>([^<]+)</.exec(first)?.[1] ?? "";
    const second = listObjectsV2(b, "bk", new URLSearchParams(`list-type=2&prefix=p/&continuation-token=${token}`));
    expect(second).toContain("<Key>p/b/1</Key>");
    expect(second).toContain("<Key>p/c</Key>");
    expect(second).not.toContain("<Key>p/a/1</Key>");
  });
});

describe("bucket policies with identity policies", () => {
  const ACCOUNT = "123456789012";
  const role = `arn:aws:iam::${ACCOUNT}:role/node`;
  const tlsOnly: PolicyDocument = {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "DenyInsecureTransport",
        Effect: "Deny",
        Principal: "*",
        Action: "s3:*",
        Resource: ["arn:aws:s3:::bk", "arn:aws:s3:::bk/*"],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      },
    ],
  };
  const identity: PolicyDocument[] = [
    {
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "s3:PutObject", Resource: "arn:aws:s3:::bk/p/*" }],
    },
  ];

  test("Bool conditions compare true/false without regard to case; a missing key does not match", () => {
    expect(conditionHolds({ Bool: { "aws:SecureTransport": "false" } }, { "aws:securetransport": "FALSE" })).toBe(true);
    expect(conditionHolds({ Bool: { "aws:SecureTransport": "false" } }, { "aws:SecureTransport": "true" })).toBe(false);
    expect(conditionHolds({ Bool: { "aws:SecureTransport": "false" } }, {})).toBe(false);
  });

  test("the TLS-only bucket policy refuses plain HTTP whatever the role allows; TLS is decided by the role", () => {
    const policy = statementsForPrincipal(tlsOnly, [role], ACCOUNT);
    const req = (secure: string, resource = "arn:aws:s3:::bk/p/x") => ({
      action: "s3:PutObject",
      resource,
      context: { "aws:SecureTransport": secure },
    });
    expect(authorizeWithResourcePolicy(identity, policy, req("true")).decision).toBe("allow");
    expect(authorizeWithResourcePolicy(identity, policy, req("false"))).toMatchObject({
      decision: "explicitDeny",
      statement: "bucket policy DenyInsecureTransport",
    });
    expect(authorizeWithResourcePolicy(identity, policy, req("true", "arn:aws:s3:::bk/other/x")).decision).toBe(
      "implicitDeny",
    );
  });

  test("a bucket policy Allow grants only to the principals it names; an account principal only denies", () => {
    const grant = (principal: PolicyDocument["Statement"]): PolicyDocument => ({
      Version: "2012-10-17",
      Statement: principal,
    });
    const allowRole = grant([
      { Effect: "Allow", Principal: { AWS: role }, Action: "s3:GetObject", Resource: "arn:aws:s3:::bk/*" },
    ]);
    const allowOther = grant([
      {
        Effect: "Allow",
        Principal: { AWS: `arn:aws:iam::${ACCOUNT}:role/other` },
        Action: "s3:GetObject",
        Resource: "*",
      },
    ]);
    const allowAccount = grant([
      { Effect: "Allow", Principal: { AWS: ACCOUNT }, Action: "s3:GetObject", Resource: "*" },
    ]);
    const get = { action: "s3:GetObject", resource: "arn:aws:s3:::bk/x" };
    const decide = (p: PolicyDocument) =>
      authorizeWithResourcePolicy([], statementsForPrincipal(p, [role], ACCOUNT), get);
    expect(decide(allowRole).decision).toBe("allow");
    expect(decide(allowOther).decision).toBe("implicitDeny");
    expect(decide(allowAccount).decision).toBe("implicitDeny");
  });
});
