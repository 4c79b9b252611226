/**
 * Pure parts of the lab's AWS endpoint: the IAM identity-policy evaluator, the SigV4 verifier (against AWS's
 * published test-suite vectors and a request signed by the nodes' own botocore), and the query-protocol decoder.
 */
import {
  actionMatches,
  authorize,
  authorizeAll,
  PolicyDocument,
  resourceMatches,
  ssmParameterArn,
} from "../../lab/aws/iam";
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
const STACK_POLICY = JSON.parse(
  JSON.stringify(nodeRolePolicy("us-east-1", "123456789012", "/redis/prod", "/redis/prod/status")),
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
