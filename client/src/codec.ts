/**
 * Transparent compression of large values, in a format any language can read (see ../FORMAT.md):
 * a compressed value is `COMPRESSION_MAGIC || gzip(original bytes)`; every other value is stored as
 * its original bytes.
 *
 * zlib's synchronous calls are used on purpose. A write's compression then happens in the same tick
 * as the call that issues it, so two writes to one key reach Redis in program order: with the async
 * calls, a large value still being compressed on the thread pool would be sent after a smaller one
 * written later, and overwrite it. The event loop is blocked for the time gzip takes, milliseconds per
 * MB (about 3 ms for 1 MB of repetitive JSON at the default level, more for less regular data), which
 * the values worth compressing can afford; `thresholdBytes` keeps small values from paying anything.
 */
import { constants, gunzipSync, gzipSync } from "node:zlib";

const MAGIC = Buffer.from([0x00, 0x52, 0x53, 0x43, 0x01]);
/** The same 5 bytes as a string: all ASCII, so a string starts with it iff its UTF-8 does. */
const MAGIC_TEXT = MAGIC.toString("latin1");

/** "\0RSC" then the format version, 1. (A copy: changing it changes nothing here.) */
export const COMPRESSION_MAGIC: Buffer = Buffer.from(MAGIC);

/**
 * Largest value decoding inflates to: Redis's own cap on a string (proto-max-bulk-len, 512 MB). A
 * value claiming more was not written by `encodeValue` and is returned as is, not inflated.
 */
const MAX_DECODED_BYTES = 512 * 1024 * 1024;

export interface CodecOptions {
  /** Values of this many bytes or fewer are stored as they are. Default 1024. */
  thresholdBytes?: number;
  /** gzip level, 1 (fastest) to 9 (smallest). Default zlib's (6). */
  level?: number;
}

export interface EncodedValue {
  /** What to write to Redis: the original value itself (same type) unless compressed. */
  stored: Buffer | string;
  compressed: boolean;
  /** Size of the original value, bytes (UTF-8 for a string). */
  inBytes: number;
  /** Size of `stored`, bytes. */
  outBytes: number;
}

/**
 * Compresses a value larger than `thresholdBytes` when that makes it smaller; otherwise returns it
 * unchanged, strings staying strings. A value that itself starts with COMPRESSION_MAGIC is always
 * compressed, whatever its size: stored raw, decodeValue would mistake it for a compressed one.
 */
export function encodeValue(v: string | Buffer, o: CodecOptions = {}): EncodedValue {
  const threshold = o.thresholdBytes ?? 1024;
  // The common case, a small value, costs no copy: a string is only encoded to bytes for gzip.
  const inBytes = typeof v === "string" ? Buffer.byteLength(v, "utf8") : v.length;
  const looksCompressed = typeof v === "string" ? v.startsWith(MAGIC_TEXT) : startsWithMagic(v);
  if (inBytes <= threshold && !looksCompressed) return { stored: v, compressed: false, inBytes, outBytes: inBytes };
  const gz = gzipSync(typeof v === "string" ? Buffer.from(v, "utf8") : v, {
    level: o.level ?? constants.Z_DEFAULT_COMPRESSION,
  });
  const outBytes = MAGIC.length + gz.length;
  if (outBytes >= inBytes && !looksCompressed) return { stored: v, compressed: false, inBytes, outBytes: inBytes };
  return { stored: Buffer.concat([MAGIC, gz], outBytes), compressed: true, inBytes, outBytes };
}

/** What `decodeValue` returns: `"buffer"` a Buffer, `"string"` UTF-8 text. */
export type DecodeAs = "buffer" | "string";

/**
 * The original value of what encodeValue stored, or `v` itself for anything else: a value another app
 * wrote, a plain gzip blob (no magic), bytes that start with the magic but are not valid gzip (gunzip
 * checks the CRC and length). `null` (a missing key) stays `null`.
 *
 * Read compressed values as Buffers (node-redis: `RESP_TYPES.BLOB_STRING` mapped to `Buffer`): a
 * reply decoded to a JS string has already lost the gzip bytes that are not valid UTF-8, so a string
 * `v` is never decompressed. Without `as`, the result has the type of `v`; with it, the type asked.
 */
export function decodeValue(v: null, as?: DecodeAs): null;
export function decodeValue(v: Buffer | string, as: "buffer"): Buffer;
export function decodeValue(v: Buffer | string, as: "string"): string;
export function decodeValue(v: Buffer, as?: undefined): Buffer;
export function decodeValue(v: string, as?: undefined): string;
export function decodeValue(v: Buffer | string | null, as: "buffer"): Buffer | null;
export function decodeValue(v: Buffer | string | null, as: "string"): string | null;
export function decodeValue(v: Buffer | string | null, as?: DecodeAs): Buffer | string | null;
export function decodeValue(v: Buffer | string | null, as?: DecodeAs): Buffer | string | null {
  if (v === null) return null;
  let out: Buffer | string = v;
  if (Buffer.isBuffer(v) && startsWithMagic(v)) {
    try {
      out = gunzipSync(v.subarray(MAGIC.length), { maxOutputLength: MAX_DECODED_BYTES });
    } catch {
      // Not ours after all: the bytes just happen to start like the magic.
    }
  }
  if (as === "string") return typeof out === "string" ? out : out.toString("utf8");
  if (as === "buffer") return typeof out === "string" ? Buffer.from(out, "utf8") : out;
  return out;
}

function startsWithMagic(b: Buffer): boolean {
  return b.length >= MAGIC.length && MAGIC.equals(b.subarray(0, MAGIC.length));
}
