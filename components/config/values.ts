/**
 * Value checks the parsers share: memory sizes, IPv4 CIDR blocks, PEM CA bundles. Pure.
 */
import { X509Certificate } from "crypto";

const MIB = 1024 ** 2;
export const GIB = 1024 ** 3;

/** Parses a Redis memory size: `512mb`, `4gb`, `1073741824` (bytes). Units are powers of 1024 as in redis.conf. */
export function parseMemorySize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|k|m|g)?\s*$/i.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = (m[2] ?? "b").toLowerCase();
  const factor: Record<string, number> = { b: 1, k: 1024, kb: 1024, m: MIB, mb: MIB, g: GIB, gb: GIB };
  const bytes = Math.floor(n * (factor[unit] ?? 1));
  return bytes > 0 ? bytes : undefined;
}

export function formatBytes(bytes: number): string {
  if (bytes % GIB === 0) return `${bytes / GIB}gb`;
  if (bytes % MIB === 0) return `${bytes / MIB}mb`;
  return String(bytes);
}

/** IPv4 CIDR check: four octets 0-255 and a prefix 0-32, with no host bits set. */
export function isCidr(text: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  if (!m) return false;
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return false;
  const addr = octets.reduce((acc, o) => acc * 256 + o, 0);
  const hostBits = 2 ** (32 - prefix);
  return addr % hostBits === 0;
}

/** The first and last address of an IPv4 CIDR block (as 32-bit numbers); the text must pass isCidr. */
function cidrRange(cidr: string): [number, number] {
  const [ip, prefix] = cidr.split("/");
  const start = ip.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  return [start, start + 2 ** (32 - Number(prefix)) - 1];
}

/** Whether two IPv4 CIDR blocks share an address (both must pass isCidr). */
export function cidrsOverlap(a: string, b: string): boolean {
  const [aStart, aEnd] = cidrRange(a);
  const [bStart, bEnd] = cidrRange(b);
  return aStart <= bEnd && bStart <= aEnd;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Why a CA bundle (PEM text, one or more certificates) cannot verify servers, or undefined when it can:
 * it must hold at least one PEM certificate block, every block must be an X.509 certificate, each a CA,
 * and no private key may ride along. Pure (parsing only, no clock: bundles carry retired CAs too).
 */
export function caBundleProblem(text: string): string | undefined {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text))
    return "holds a private key: a CA bundle is public certificates only, and config is no place for a key";
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0)
    return "is not PEM text: it has no -----BEGIN CERTIFICATE----- ... -----END CERTIFICATE----- block";
  for (const [i, block] of blocks.entries()) {
    const which = `certificate ${i + 1} of ${blocks.length}`;
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch {
      return `${which} is not a valid X.509 certificate (was it cut or re-wrapped when copied?)`;
    }
    if (!cert.ca)
      return `${which} (${cert.subject.replace(/\n/g, ", ")}) is not a CA certificate: the bundle must hold the CAs that sign the database's certificate, not a server certificate`;
  }
  return undefined;
}

/** A long value shortened for a problem line (PEM bundles run to kilobytes). */
export function abbreviate(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > 60 ? `${flat.slice(0, 57)}...` : flat;
}
