/**
 * The S3 calls the nodes' awscli makes for backups and restores, over S3's REST protocol: PutObject (awscli sends
 * `UNSIGNED-PAYLOAD` with a Content-MD5 over HTTPS), multipart uploads (awscli's default above 8 MiB), GetObject
 * (whole or by Range, as `s3 cp` downloads large files), HeadObject and ListObjectsV2.
 *
 * Authorization is AWS's for S3 in one account: the caller's identity policies and the bucket policy together
 * (an explicit Deny in either refuses), with `aws:SecureTransport`, `s3:prefix` and `s3:delimiter` in the
 * condition context; a bucket whose default encryption is SSE-KMS also needs the caller allowed to use the key
 * through S3 (`kms:GenerateDataKey` to write, `kms:Decrypt` to read or to finish a multipart upload), as S3
 * calls KMS on the caller's behalf.
 *
 * Bytes go to files below DIR/s3; the endpoint's state describes them.
 */
import * as fs from "fs";
import * as path from "path";
import { createHash, randomBytes } from "crypto";
import { xmlEscape } from "./protocols";
import type { BucketState, EndpointState, MultipartUpload, StoredObject } from "./state";

export const S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/";
/** The lab's cap on one request's body (S3 allows 5 GiB; awscli's parts are 8 MiB). */
export const MAX_S3_BODY = 512 * 1024 * 1024;

export class S3Error extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export interface S3Answer {
  status: number;
  headers: Record<string, string>;
  /** A string body (XML), or a file range to stream. */
  body?: string;
  file?: { path: string; start: number; end: number };
}

/** A request body already stored to a temporary file, with the digests S3 checks. */
export interface ReceivedBody {
  file: string;
  size: number;
  md5: Buffer;
  sha256Hex: string;
}

export interface S3Request {
  method: string;
  host: string;
  /** Raw path and query, still percent-encoded. */
  path: string;
  query: URLSearchParams;
  headers: Record<string, string | undefined>;
  body: ReceivedBody;
}

export interface S3Context {
  region: string;
  state: EndpointState;
  dataDir: string;
  now: number;
  /** Authorizes `action` on `resource` against identity and bucket policy, throwing S3's AccessDenied. */
  authorize(action: string, resource: string, bucket: BucketState, context?: Record<string, string>): void;
  /** Authorizes the caller's use of a KMS key through S3. */
  authorizeKey(action: string, keyArn: string): void;
  changed(): void;
}

/** What the request log records: the action S3 would name and its resources. */
export interface S3Route {
  action: string;
  resources: string[];
}

const bucketArn = (bucket: string) => `arn:aws:s3:::${bucket}`;
const objectArn = (bucket: string, key: string) => `arn:aws:s3:::${bucket}/${key}`;

/**
 * Bucket and key from virtual-hosted (`bucket.s3.amazonaws.com`, `bucket.s3.<region>.amazonaws.com`) or
 * path-style (`s3.<region>.amazonaws.com/bucket/key`, any address) requests.
 */
export function bucketAndKey(host: string, rawPath: string): { bucket: string; key: string } {
  const name = host.split(":")[0].toLowerCase();
  const m = /^(.+)\.s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com$/.exec(name);
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw new S3Error("InvalidURI", "Couldn't parse the specified URI.", 400);
    }
  };
  const p = rawPath.startsWith("/") ? rawPath.slice(1) : rawPath;
  if (m) return { bucket: m[1], key: decode(p) };
  const slash = p.indexOf("/");
  return slash < 0
    ? { bucket: decode(p), key: "" }
    : { bucket: decode(p.slice(0, slash)), key: decode(p.slice(slash + 1)) };
}

function quoted(etag: string): string {
  return `"${etag}"`;
}

function newId(bytes = 16): string {
  return randomBytes(bytes).toString("base64url");
}

function objectHeaders(o: StoredObject): Record<string, string> {
  const h: Record<string, string> = {
    etag: quoted(o.etag),
    "last-modified": new Date(o.lastModified).toUTCString(),
    "content-type": o.contentType,
    "accept-ranges": "bytes",
    "x-amz-version-id": o.versionId,
  };
  if (o.kmsKeyArn) {
    h["x-amz-server-side-encryption"] = "aws:kms";
    h["x-amz-server-side-encryption-aws-kms-key-id"] = o.kmsKeyArn;
    h["x-amz-server-side-encryption-bucket-key-enabled"] = "true";
  } else h["x-amz-server-side-encryption"] = "AES256";
  return h;
}

function xml(root: string, inner: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${S3_XMLNS}">${inner}</${root}>`;
}

export function s3ErrorBody(err: S3Error, requestId: string, resource: string): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${xmlEscape(err.code)}</Code>` +
    `<Message>${xmlEscape(err.message)}</Message><Resource>${xmlEscape(resource)}</Resource>` +
    `<RequestId>${requestId}</RequestId></Error>`
  );
}

/** Which S3 action a request is, before anything is checked (for the log, and to authorize). */
export function routeOf(req: S3Request): S3Route & { bucket: string; key: string } {
  const { bucket, key } = bucketAndKey(req.host, req.path);
  const q = req.query;
  const obj = [objectArn(bucket, key)];
  const m = req.method.toUpperCase();
  if (!bucket) throw new S3Error("NotImplemented", "ListBuckets is not served by the lab endpoint.", 501);
  if (!key) {
    if (m === "GET" && q.get("list-type") === "2")
      return { action: "ListObjectsV2", resources: [bucketArn(bucket)], bucket, key };
    if (m === "GET" || m === "HEAD")
      return { action: m === "HEAD" ? "HeadBucket" : "ListObjects", resources: [bucketArn(bucket)], bucket, key };
    throw new S3Error("NotImplemented", `${m} on a bucket is not served by the lab endpoint.`, 501);
  }
  if (m === "POST" && q.has("uploads")) return { action: "CreateMultipartUpload", resources: obj, bucket, key };
  if (m === "PUT" && q.has("uploadId")) return { action: "UploadPart", resources: obj, bucket, key };
  if (m === "POST" && q.has("uploadId")) return { action: "CompleteMultipartUpload", resources: obj, bucket, key };
  if (m === "DELETE" && q.has("uploadId")) return { action: "AbortMultipartUpload", resources: obj, bucket, key };
  if (m === "PUT") return { action: "PutObject", resources: obj, bucket, key };
  if (m === "GET") return { action: "GetObject", resources: obj, bucket, key };
  if (m === "HEAD") return { action: "HeadObject", resources: obj, bucket, key };
  if (m === "DELETE") return { action: "DeleteObject", resources: obj, bucket, key };
  throw new S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.", 405);
}

/** The IAM action each S3 operation is authorized as (AWS's "Actions defined by Amazon S3"). */
const IAM_ACTION: Record<string, string> = {
  ListObjectsV2: "s3:ListBucket",
  ListObjects: "s3:ListBucket",
  HeadBucket: "s3:ListBucket",
  CreateMultipartUpload: "s3:PutObject",
  UploadPart: "s3:PutObject",
  CompleteMultipartUpload: "s3:PutObject",
  AbortMultipartUpload: "s3:AbortMultipartUpload",
  PutObject: "s3:PutObject",
  GetObject: "s3:GetObject",
  HeadObject: "s3:GetObject",
  DeleteObject: "s3:DeleteObject",
};

function moveInto(ctx: S3Context, from: string): string {
  fs.mkdirSync(ctx.dataDir, { recursive: true });
  const name = newId(18);
  fs.renameSync(from, path.join(ctx.dataDir, name));
  return name;
}

function removeData(ctx: S3Context, file: string): void {
  fs.rmSync(path.join(ctx.dataDir, file), { force: true });
}

/** Makes `o` the key's current version; the one it replaces becomes noncurrent (versioning) or is deleted. */
function store(ctx: S3Context, b: BucketState, key: string, o: StoredObject): void {
  const prev = b.objects[key];
  if (prev) {
    if (b.versioning) (b.noncurrent[key] ??= []).push(prev);
    else removeData(ctx, prev.file);
  }
  b.objects[key] = o;
  ctx.changed();
}

function checkDigests(req: S3Request): void {
  const claimed = req.headers["x-amz-content-sha256"];
  if (claimed && /^[0-9a-f]{64}$/.test(claimed) && claimed !== req.body.sha256Hex) {
    throw new S3Error(
      "XAmzContentSHA256Mismatch",
      "The provided 'x-amz-content-sha256' header does not match what was computed.",
      400,
    );
  }
  const md5 = req.headers["content-md5"];
  if (md5 !== undefined && md5 !== req.body.md5.toString("base64")) {
    throw new S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.", 400);
  }
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` over an object of `size` bytes; undefined when absent. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined; // S3 ignores a malformed Range
  let start: number;
  let end: number;
  if (m[1] === "") {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) {
    throw new S3Error("InvalidRange", "The requested range is not satisfiable", 416);
  }
  return { start, end };
}

/** Parses CompleteMultipartUpload's `<Part><PartNumber>n</PartNumber><ETag>"x"</ETag></Part>` list. */
export function parseCompleteParts(body: string): { partNumber: number; etag: string }[] {
  const parts: { partNumber: number; etag: string }[] = [];
  for (const m of body.matchAll(/<Part>([\s\S]*?)<\/Part>/g)) {
    const n = /<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(m[1]);
    const e = /<ETag>\s*([\s\S]*?)\s*<\/ETag>/.exec(m[1]);
    if (!n || !e) throw new S3Error("MalformedXML", "The XML you provided was not well-formed.", 400);
    parts.push({ partNumber: Number(n[1]), etag: e[1].replace(/&quot;/g, '"').replace(/"/g, "") });
  }
  if (parts.length === 0) throw new S3Error("MalformedXML", "The XML you provided was not well-formed.", 400);
  return parts;
}

/** Serves one authenticated S3 request. */
export function serveS3(req: S3Request, ctx: S3Context): S3Answer {
  const route = routeOf(req);
  const { bucket, key, action } = route;
  const b = ctx.state.buckets[bucket];
  if (!b) throw new S3Error("NoSuchBucket", "The specified bucket does not exist", 404);
  checkDigests(req);
  const context: Record<string, string> = {};
  if (IAM_ACTION[action] === "s3:ListBucket") {
    context["s3:prefix"] = req.query.get("prefix") ?? "";
    if (req.query.has("delimiter")) context["s3:delimiter"] = req.query.get("delimiter") ?? "";
  }
  ctx.authorize(IAM_ACTION[action], route.resources[0], b, context);
  const q = req.query;
  switch (action) {
    case "PutObject": {
      if (b.kmsKeyArn) ctx.authorizeKey("kms:GenerateDataKey", b.kmsKeyArn);
      const o: StoredObject = {
        file: moveInto(ctx, req.body.file),
        size: req.body.size,
        etag: req.body.md5.toString("hex"),
        lastModified: ctx.now,
        versionId: b.versioning ? newId() : "null",
        contentType: req.headers["content-type"] ?? "binary/octet-stream",
        kmsKeyArn: b.kmsKeyArn,
      };
      store(ctx, b, key, o);
      const h = objectHeaders(o);
      return { status: 200, headers: { etag: h.etag, "x-amz-version-id": o.versionId, ...sseHeaders(h) } };
    }
    case "GetObject":
    case "HeadObject": {
      const o = b.objects[key];
      if (!o) throw new S3Error("NoSuchKey", "The specified key does not exist.", 404);
      if (o.kmsKeyArn) ctx.authorizeKey("kms:Decrypt", o.kmsKeyArn);
      const range = parseRange(req.headers.range, o.size);
      const headers = objectHeaders(o);
      const file = path.join(ctx.dataDir, o.file);
      if (!range) {
        headers["content-length"] = String(o.size);
        return {
          status: 200,
          headers,
          file: action === "GetObject" ? { path: file, start: 0, end: o.size - 1 } : undefined,
        };
      }
      headers["content-range"] = `bytes ${range.start}-${range.end}/${o.size}`;
      headers["content-length"] = String(range.end - range.start + 1);
      return { status: 206, headers, file: action === "GetObject" ? { path: file, ...range } : undefined };
    }
    case "CreateMultipartUpload": {
      if (b.kmsKeyArn) ctx.authorizeKey("kms:GenerateDataKey", b.kmsKeyArn);
      const uploadId = newId(24);
      const u: MultipartUpload = {
        bucket,
        key,
        initiated: ctx.now,
        kmsKeyArn: b.kmsKeyArn,
        contentType: req.headers["content-type"] ?? "binary/octet-stream",
        parts: {},
      };
      ctx.state.uploads[uploadId] = u;
      ctx.changed();
      const inner =
        `<Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(key)}</Key>` + `<UploadId>${uploadId}</UploadId>`;
      return {
        status: 200,
        headers: { "content-type": "application/xml" },
        body: xml("InitiateMultipartUploadResult", inner),
      };
    }
    case "UploadPart": {
      const u = uploadOf(ctx, q.get("uploadId") ?? "", bucket, key);
      const n = Number(q.get("partNumber"));
      if (!Number.isInteger(n) || n < 1 || n > 10000) {
        throw new S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive", 400);
      }
      if (u.kmsKeyArn) ctx.authorizeKey("kms:GenerateDataKey", u.kmsKeyArn);
      const prev = u.parts[String(n)];
      if (prev) removeData(ctx, prev.file);
      u.parts[String(n)] = {
        file: moveInto(ctx, req.body.file),
        size: req.body.size,
        md5: req.body.md5.toString("hex"),
      };
      ctx.changed();
      return { status: 200, headers: { etag: quoted(req.body.md5.toString("hex")) } };
    }
    case "CompleteMultipartUpload": {
      const uploadId = q.get("uploadId") ?? "";
      const u = uploadOf(ctx, uploadId, bucket, key);
      // S3 decrypts the parts to assemble them: finishing an SSE-KMS upload needs kms:Decrypt too.
      if (u.kmsKeyArn) ctx.authorizeKey("kms:Decrypt", u.kmsKeyArn);
      const listed = parseCompleteParts(fs.readFileSync(req.body.file, "utf8"));
      fs.rmSync(req.body.file, { force: true });
      let last = 0;
      const md5s: Buffer[] = [];
      for (const [i, p] of listed.entries()) {
        if (p.partNumber <= last) {
          throw new S3Error("InvalidPartOrder", "The list of parts was not in ascending order.", 400);
        }
        last = p.partNumber;
        const stored = u.parts[String(p.partNumber)];
        if (!stored || stored.md5 !== p.etag) {
          throw new S3Error("InvalidPart", "One or more of the specified parts could not be found.", 400);
        }
        if (i < listed.length - 1 && stored.size < 5 * 1024 * 1024) {
          throw new S3Error("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size", 400);
        }
        md5s.push(Buffer.from(stored.md5, "hex"));
      }
      fs.mkdirSync(ctx.dataDir, { recursive: true });
      const name = newId(18);
      const target = path.join(ctx.dataDir, name);
      let size = 0;
      for (const p of listed) {
        const part = path.join(ctx.dataDir, u.parts[String(p.partNumber)].file);
        fs.appendFileSync(target, fs.readFileSync(part));
        size += u.parts[String(p.partNumber)].size;
      }
      if (listed.length === 0) fs.writeFileSync(target, "");
      for (const part of Object.values(u.parts)) removeData(ctx, part.file);
      delete ctx.state.uploads[uploadId];
      const etag = `${createHash("md5").update(Buffer.concat(md5s)).digest("hex")}-${listed.length}`;
      const o: StoredObject = {
        file: name,
        size,
        etag,
        lastModified: ctx.now,
        versionId: b.versioning ? newId() : "null",
        contentType: u.contentType,
        kmsKeyArn: u.kmsKeyArn,
      };
      store(ctx, b, key, o);
      const inner =
        `<Location>https://${xmlEscape(bucket)}.s3.amazonaws.com/${xmlEscape(key)}</Location>` +
        `<Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(key)}</Key><ETag>${quoted(etag)}</ETag>`;
      return {
        status: 200,
        headers: {
          "content-type": "application/xml",
          "x-amz-version-id": o.versionId,
          ...sseHeaders(objectHeaders(o)),
        },
        body: xml("CompleteMultipartUploadResult", inner),
      };
    }
    case "AbortMultipartUpload": {
      const uploadId = q.get("uploadId") ?? "";
      const u = uploadOf(ctx, uploadId, bucket, key);
      for (const part of Object.values(u.parts)) removeData(ctx, part.file);
      delete ctx.state.uploads[uploadId];
      ctx.changed();
      return { status: 204, headers: {} };
    }
    case "ListObjectsV2":
      return { status: 200, headers: { "content-type": "application/xml" }, body: listObjectsV2(b, bucket, q) };
    case "HeadBucket":
      return { status: 200, headers: {} };
    default:
      throw new S3Error("NotImplemented", `${action} is not served by the lab endpoint.`, 501);
  }
}

function sseHeaders(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).filter(([k]) => k.startsWith("x-amz-server-side-encryption")));
}

function uploadOf(ctx: S3Context, uploadId: string, bucket: string, key: string): MultipartUpload {
  const u = ctx.state.uploads[uploadId];
  if (!u || u.bucket !== bucket || u.key !== key) {
    throw new S3Error(
      "NoSuchUpload",
      "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
      404,
    );
  }
  return u;
}

/** ListObjectsV2 with prefix, delimiter, start-after, max-keys and continuation tokens (the last key, opaque). */
export function listObjectsV2(b: BucketState, bucket: string, q: URLSearchParams): string {
  const prefix = q.get("prefix") ?? "";
  const delimiter = q.get("delimiter") ?? "";
  const maxKeys = Math.min(1000, Math.max(0, Number(q.get("max-keys") ?? "1000") || 0));
  const token = q.get("continuation-token");
  const after = token ? Buffer.from(token, "base64url").toString("utf8") : (q.get("start-after") ?? "");
  const keys = Object.keys(b.objects)
    .filter((k) => k.startsWith(prefix) && k > after)
    .sort();
  const contents: string[] = [];
  const prefixes = new Set<string>();
  let lastSeen = "";
  let truncated = false;
  for (const k of keys) {
    if (contents.length + prefixes.size >= maxKeys) {
      truncated = true;
      break;
    }
    lastSeen = k;
    const rest = k.slice(prefix.length);
    const d = delimiter ? rest.indexOf(delimiter) : -1;
    if (d >= 0) {
      prefixes.add(prefix + rest.slice(0, d + delimiter.length));
      continue;
    }
    const o = b.objects[k];
    contents.push(
      `<Contents><Key>${xmlEscape(k)}</Key><LastModified>${new Date(o.lastModified).toISOString()}</LastModified>` +
        `<ETag>${xmlEscape(quoted(o.etag))}</ETag><Size>${o.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
    );
  }
  const inner =
    `<Name>${xmlEscape(bucket)}</Name><Prefix>${xmlEscape(prefix)}</Prefix>` +
    (delimiter ? `<Delimiter>${xmlEscape(delimiter)}</Delimiter>` : "") +
    `<KeyCount>${contents.length + prefixes.size}</KeyCount><MaxKeys>${maxKeys}</MaxKeys>` +
    `<IsTruncated>${truncated}</IsTruncated>` +
    (truncated ? `<NextContinuationToken>${Buffer.from(lastSeen).toString("base64url")}</NextContinuationToken>` : "") +
    contents.join("") +
    [...prefixes].map((p) => `<CommonPrefixes><Prefix>${xmlEscape(p)}</Prefix></CommonPrefixes>`).join("");
  return xml("ListBucketResult", inner);
}
