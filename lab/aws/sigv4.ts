/**
 * AWS Signature Version 4, verified the way AWS verifies it: rebuild the canonical request from what arrived on
 * the wire (the signed headers only), derive the signing key from the secret the endpoint issued, and compare.
 * Pure functions over a plain request shape, so unit tests can drive them with AWS's published test vectors.
 *
 * Canonicalisation follows botocore's signer (botocore/auth.py SigV4Auth), which is what the nodes run: the path
 * is dot-segment-normalised and percent-encoded once more (non-S3 services sign the already encoded path), the
 * query is sorted by encoded key then value, header values are trimmed with inner whitespace collapsed.
 */
import { createHash, createHmac, timingSafeEqual } from "crypto";

export const ALGORITHM = "AWS4-HMAC-SHA256";
/** AWS refuses requests whose X-Amz-Date is more than five minutes from its clock, either way. */
export const MAX_SKEW_MS = 5 * 60 * 1000;

/** A request as received: the raw path and query (still percent-encoded), raw header pairs, the body bytes. */
export interface SignableRequest {
  method: string;
  path: string;
  query: string;
  headers: [string, string][];
  body: Buffer;
}

export interface ParsedAuthorization {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

/** What the verifier needs to know about an access key; undefined from the lookup means unknown. */
export interface KnownKey {
  secretAccessKey: string;
  /** Session token the key was issued with; temporary (ASIA) keys must present it. */
  sessionToken?: string;
  /** Epoch ms after which the key is refused as expired. */
  expiresAt?: number;
}

export type AuthFailureKind =
  | "missing" // no Authorization header at all
  | "incomplete" // an Authorization header that is not a well-formed SigV4 one
  | "unknownKey" // access key (or its session token) not issued by this endpoint
  | "expiredToken" // temporary credentials past their expiration
  | "badScope" // credential scope names another region/service or a date other than X-Amz-Date's
  | "skew" // X-Amz-Date more than five minutes from the endpoint's clock
  | "badSignature"; // everything parsed, the signature just does not match

export interface AuthFailure {
  kind: AuthFailureKind;
  message: string;
}

export type VerifyResult =
  | { ok: true; auth: ParsedAuthorization; key: KnownKey }
  | { ok: false; failure: AuthFailure; auth?: ParsedAuthorization };

const BAD_SIGNATURE =
  "The request signature we calculated does not match the signature you provided. " +
  "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

export function sha256Hex(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data, "utf8").digest();
}

/** RFC 3986 encoding as AWS specifies it: everything but A-Z a-z 0-9 - _ . ~ is %XX (upper-case hex, UTF-8). */
export function uriEncode(s: string, keepSlash = false): string {
  let out = "";
  for (const byte of Buffer.from(s, "utf8")) {
    const ch = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-_.~]/.test(ch) || (keepSlash && ch === "/")) out += ch;
    else out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** botocore's remove_dot_segments: drops `.`, empty segments, and resolves `..`. */
export function removeDotSegments(path: string): string {
  if (!path) return "";
  const out: string[] = [];
  for (const seg of path.split("/")) {
    if (!seg || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  const first = path.startsWith("/") ? "/" : "";
  const last = path.endsWith("/") && out.length > 0 ? "/" : "";
  return first + out.join("/") + last;
}

export function canonicalUri(rawPath: string): string {
  const normalized = rawPath ? removeDotSegments(rawPath) : "/";
  return uriEncode(normalized || "/", true);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function canonicalQuery(rawQuery: string): string {
  if (!rawQuery) return "";
  const pairs = rawQuery
    .split("&")
    .filter((p) => p.length > 0)
    .map((p) => {
      const eq = p.indexOf("=");
      const k = eq < 0 ? p : p.slice(0, eq);
      const v = eq < 0 ? "" : p.slice(eq + 1);
      return [uriEncode(safeDecode(k)), uriEncode(safeDecode(v))] as const;
    });
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

/** Values of one header (case-insensitive name), each trimmed with whitespace runs collapsed, joined by commas. */
function headerValue(headers: [string, string][], name: string): string | undefined {
  const values = headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v.trim().split(/\s+/).join(" "));
  return values.length === 0 ? undefined : values.join(",");
}

export function canonicalHeaders(headers: [string, string][], signed: string[]): string {
  return signed.map((h) => `${h}:${headerValue(headers, h) ?? ""}\n`).join("");
}

/**
 * S3 signs differently from the other services (botocore's S3SigV4Auth): the path exactly as sent (already
 * percent-encoded once, never normalised), and as payload hash whatever the client put in
 * `x-amz-content-sha256`: the body's SHA-256, or `UNSIGNED-PAYLOAD` (awscli's uploads over HTTPS, which carry a
 * Content-MD5 instead). The S3 handler checks that a hash given matches the body.
 */
export function canonicalRequest(req: SignableRequest, signedHeaders: string[], service = ""): string {
  const s3 = service === "s3";
  return [
    req.method.toUpperCase(),
    s3 ? req.path || "/" : canonicalUri(req.path),
    canonicalQuery(req.query),
    canonicalHeaders(req.headers, signedHeaders),
    signedHeaders.join(";"),
    s3 ? (headerValue(req.headers, "x-amz-content-sha256") ?? "") : sha256Hex(req.body),
  ].join("\n");
}

export function credentialScope(date: string, region: string, service: string): string {
  return `${date}/${region}/${service}/aws4_request`;
}

export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return [ALGORITHM, amzDate, scope, sha256Hex(canonical)].join("\n");
}

export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), "aws4_request");
}

export function computeSignature(
  req: SignableRequest,
  signedHeaders: string[],
  amzDate: string,
  secret: string,
  region: string,
  service: string,
): string {
  const date = amzDate.slice(0, 8);
  const canonical = canonicalRequest(req, signedHeaders, service);
  const sts = stringToSign(amzDate, credentialScope(date, region, service), canonical);
  return createHmac("sha256", signingKey(secret, date, region, service))
    .update(sts, "utf8")
    .digest("hex");
}

/** Parses `AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, SignedHeaders=a;b, Signature=hex`. */
export function parseAuthorization(header: string): ParsedAuthorization | undefined {
  const trimmed = header.trim();
  if (!trimmed.startsWith(`${ALGORITHM} `)) return undefined;
  const fields = new Map<string, string>();
  for (const part of trimmed.slice(ALGORITHM.length + 1).split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get("Credential")?.split("/");
  const signedHeaders = fields.get("SignedHeaders");
  const signature = fields.get("Signature");
  if (!credential || credential.length !== 5 || credential[4] !== "aws4_request") return undefined;
  if (!signedHeaders || !signature || !/^[0-9a-f]{64}$/.test(signature)) return undefined;
  const [accessKeyId, date, region, service] = credential;
  return { accessKeyId, date, region, service, signedHeaders: signedHeaders.split(";"), signature };
}

/** `20150830T123600Z` to epoch ms, or undefined when malformed. */
export function parseAmzDate(s: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, se] = m.map(Number);
  return Date.UTC(y, mo - 1, d, h, mi, se);
}

export function formatAmzDate(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
}

function fail(kind: AuthFailureKind, message: string, auth?: ParsedAuthorization): VerifyResult {
  return { ok: false, failure: { kind, message }, auth };
}

function skewMessage(amzDate: string, skewMs: number, now: number): string {
  const fmt = (ms: number) => formatAmzDate(ms);
  const nowS = fmt(now);
  return skewMs < 0
    ? `Signature expired: ${amzDate} is now earlier than ${fmt(now - MAX_SKEW_MS)} (${nowS} - 5 min.)`
    : `Signature not yet current: ${amzDate} is still later than ${fmt(now + MAX_SKEW_MS)} (${nowS} + 5 min.)`;
}

export interface VerifyOptions {
  /** The endpoint's clock, epoch ms. */
  now: number;
  /** Region the endpoint serves; a scope naming another region is refused. */
  region: string;
  /** Signing name the request must be scoped to, when the caller already knows the service. */
  service?: string;
  lookup: (accessKeyId: string) => KnownKey | undefined;
}

/** Verifies a request's SigV4 Authorization header against the keys the endpoint issued. */
export function verify(req: SignableRequest, opts: VerifyOptions): VerifyResult {
  const header = headerValue(req.headers, "authorization");
  if (header === undefined) return fail("missing", "Missing Authentication Token");
  const auth = parseAuthorization(header);
  if (!auth) {
    return fail(
      "incomplete",
      `Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.`,
    );
  }
  const amzDate = headerValue(req.headers, "x-amz-date");
  const signedMs = amzDate === undefined ? undefined : parseAmzDate(amzDate);
  if (amzDate === undefined || signedMs === undefined || !auth.signedHeaders.includes("x-amz-date")) {
    return fail(
      "incomplete",
      "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
      auth,
    );
  }
  if (auth.service === "s3" && headerValue(req.headers, "x-amz-content-sha256") === undefined) {
    return fail("incomplete", "Missing required header for this request: x-amz-content-sha256", auth);
  }
  if (!auth.signedHeaders.includes("host")) {
    return fail("incomplete", "'Host' must be a 'SignedHeader' in the AWS Authorization.", auth);
  }
  const skew = signedMs - opts.now;
  if (Math.abs(skew) > MAX_SKEW_MS) return fail("skew", skewMessage(amzDate, skew, opts.now), auth);
  if (auth.date !== amzDate.slice(0, 8)) {
    return fail(
      "badScope",
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${auth.date}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`,
      auth,
    );
  }
  if (auth.region !== opts.region) return fail("badScope", "Credential should be scoped to a valid region.", auth);
  if (opts.service !== undefined && auth.service !== opts.service) {
    return fail("badScope", `Credential should be scoped to correct service: '${opts.service}'.`, auth);
  }
  const key = opts.lookup(auth.accessKeyId);
  if (!key) return fail("unknownKey", "The security token included in the request is invalid.", auth);
  const token = headerValue(req.headers, "x-amz-security-token");
  if (key.sessionToken !== undefined && token !== key.sessionToken) {
    return fail("unknownKey", "The security token included in the request is invalid.", auth);
  }
  if (key.expiresAt !== undefined && opts.now >= key.expiresAt) {
    return fail("expiredToken", "The security token included in the request is expired", auth);
  }
  const expected = computeSignature(req, auth.signedHeaders, amzDate, key.secretAccessKey, auth.region, auth.service);
  const a = Buffer.from(expected, "hex");
  const b = Buffer.from(auth.signature, "hex");
  if (a.length !== b.length || !timingSafeEqual(a, b)) return fail("badSignature", BAD_SIGNATURE, auth);
  return { ok: true, auth, key };
}

/**
 * Signs a request (adds X-Amz-Date, the session token and Authorization), signing every header given plus host.
 * The lab itself never needs to sign; unit tests use it to build requests the verifier must accept or refuse.
 */
export function signRequest(
  req: SignableRequest,
  creds: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
  region: string,
  service: string,
  now: number,
): SignableRequest {
  const amzDate = formatAmzDate(now);
  const headers: [string, string][] = [...req.headers, ["X-Amz-Date", amzDate]];
  if (creds.sessionToken !== undefined) headers.push(["X-Amz-Security-Token", creds.sessionToken]);
  const signed = [...new Set(headers.map(([k]) => k.toLowerCase()))].sort();
  const withDate = { ...req, headers };
  const signature = computeSignature(withDate, signed, amzDate, creds.secretAccessKey, region, service);
  const scope = credentialScope(amzDate.slice(0, 8), region, service);
  headers.push([
    "Authorization",
    `${ALGORITHM} Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signed.join(";")}, Signature=${signature}`,
  ]);
  return { ...req, headers };
}
