/**
 * TLS material for the AWS endpoint, made with openssl: a lab CA (or an existing one) and a server certificate
 * for the service host names the nodes resolve to the endpoint. Wildcards cover one label only, so the regional
 * names (`ssm.us-east-1.amazonaws.com`) are listed explicitly next to `*.<region>.amazonaws.com`.
 */
import * as fs from "fs";
import * as path from "path";
import { execFileSync } from "child_process";

export interface EndpointTls {
  caCertFile: string;
  caCertPem: string;
  certPem: string;
  keyPem: string;
}

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

export function endpointHostNames(region: string): string[] {
  return [
    `ssm.${region}.amazonaws.com`,
    `monitoring.${region}.amazonaws.com`,
    `sts.${region}.amazonaws.com`,
    `*.${region}.amazonaws.com`,
    "sts.amazonaws.com",
    "*.amazonaws.com",
    // S3's virtual-hosted names put the bucket in front of the service: <bucket>.s3[.<region>].amazonaws.com.
    `*.s3.${region}.amazonaws.com`,
    "*.s3.amazonaws.com",
  ];
}

/**
 * Creates (or reuses) `dir/ca.{key,crt}` and issues `dir/endpoint.{key,crt}` for the service names plus `ips`.
 * Pass `ca` to sign with a lab CA made elsewhere (the hosts trust that one).
 */
export function makeEndpointTls(
  dir: string,
  opts: { region: string; ips?: string[]; ca?: { certFile: string; keyFile: string } },
): EndpointTls {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caKey = opts.ca?.keyFile ?? path.join(dir, "ca.key");
  const caCert = opts.ca?.certFile ?? path.join(dir, "ca.crt");
  if (!opts.ca && !fs.existsSync(caCert)) {
    openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", caKey]);
    openssl(
      ["req", "-x509", "-new", "-key", caKey, "-subj", "/O=redis-stack lab/CN=redis-stack lab AWS CA"].concat([
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        caCert,
      ]),
    );
  }
  const key = path.join(dir, "endpoint.key");
  const crt = path.join(dir, "endpoint.crt");
  const csr = path.join(dir, "endpoint.csr");
  const ext = path.join(dir, "endpoint.ext");
  const san = [...endpointHostNames(opts.region).map((n) => `DNS:${n}`), ...(opts.ips ?? []).map((ip) => `IP:${ip}`)];
  // Strict X.509 checking (Python 3.13+, OpenSSL 3) wants the key identifiers and a non-CA leaf spelled out.
  fs.writeFileSync(
    ext,
    [
      `subjectAltName=${san.join(",")}`,
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectKeyIdentifier=hash",
      "authorityKeyIdentifier=keyid,issuer",
      "",
    ].join("\n"),
  );
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]);
  openssl(["req", "-new", "-key", key, "-subj", `/CN=${opts.region}.amazonaws.com`, "-out", csr]);
  openssl(
    ["x509", "-req", "-in", csr, "-CA", caCert, "-CAkey", caKey, "-CAcreateserial", "-days", "825"].concat([
      "-extfile",
      ext,
      "-out",
      crt,
    ]),
  );
  return {
    caCertFile: caCert,
    caCertPem: fs.readFileSync(caCert, "utf8"),
    certPem: fs.readFileSync(crt, "utf8"),
    keyPem: fs.readFileSync(key, "utf8"),
  };
}
