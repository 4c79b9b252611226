/**
 * A throwaway CA and per-node certificates made with openssl, in the same shape the stack makes with
 * @pulumi/tls (ECDSA P-256, the node's IP as SAN, server+client auth), for the local mode and the tests.
 */
import * as fs from "fs";
import * as path from "path";
import { execFileSync } from "child_process";

export interface Pki {
  caCertPem: string;
  caCertFile: string;
  nodes: Map<string, { certPem: string; keyPem: string }>;
}

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** Creates (or reuses, when `dir` already holds them) a CA and one certificate per node. */
export function makePki(dir: string, nodes: { name: string; ip: string }[]): Pki {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caKey = path.join(dir, "ca.key");
  const caCert = path.join(dir, "ca.crt");
  if (!fs.existsSync(caCert)) {
    openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", caKey]);
    openssl([
      "req",
      "-x509",
      "-new",
      "-key",
      caKey,
      "-subj",
      "/O=redis-stack/CN=redis-stack local CA",
      "-days",
      "3650",
      "-out",
      caCert,
    ]);
  }
  const out = new Map<string, { certPem: string; keyPem: string }>();
  for (const n of nodes) {
    const key = path.join(dir, `${n.name}.key`);
    const crt = path.join(dir, `${n.name}.crt`);
    if (!fs.existsSync(crt)) {
      const csr = path.join(dir, `${n.name}.csr`);
      const ext = path.join(dir, `${n.name}.ext`);
      fs.writeFileSync(
        ext,
        `subjectAltName=IP:${n.ip}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n`,
      );
      openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]);
      openssl(["req", "-new", "-key", key, "-subj", `/CN=${n.name}`, "-out", csr]);
      openssl([
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        caCert,
        "-CAkey",
        caKey,
        "-CAcreateserial",
        "-days",
        "825",
        "-extfile",
        ext,
        "-out",
        crt,
      ]);
    }
    out.set(n.name, { certPem: fs.readFileSync(crt, "utf8"), keyPem: fs.readFileSync(key, "utf8") });
  }
  return { caCertPem: fs.readFileSync(caCert, "utf8"), caCertFile: caCert, nodes: out };
}
