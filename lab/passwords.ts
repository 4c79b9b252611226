/** The passwords of a lab or local deployment: what the stack generates and keeps in SSM on AWS. */
import * as crypto from "crypto";

/** The stack name of the lab's and the local mode's deployments (SSM names, metrics, the Sentinel master name). */
export const LAB_STACK = "lab";

export interface Passwords {
  app: string;
  admin: string;
  /** Replicas logging in to their master (ACL user `replication`). */
  replication: string;
  /** The nodes' Prometheus exporter (ACL user `monitor`). */
  monitor: string;
  /** The Sentinel topology's Sentinels (ACL user `sentinel`, on the data nodes and on each other). */
  sentinel: string;
}

export function generatePasswords(): Passwords {
  const pw = () =>
    crypto
      .randomBytes(24)
      .toString("base64url")
      .replace(/[^A-Za-z0-9]/g, "")
      .slice(0, 32)
      .padEnd(32, "0");
  return { app: pw(), admin: pw(), replication: pw(), monitor: pw(), sentinel: pw() };
}
