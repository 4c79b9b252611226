/**
 * Value compression: round trips, what stays raw, values other apps wrote, and the documented byte
 * format (FORMAT.md) checked with an independent decoder and encoder written inline here.
 */
import zlib from "node:zlib";
import { COMPRESSION_MAGIC, decodeValue, encodeValue } from "../../../client/src/codec";

/** Deterministic bytes (xorshift32), so "random" data is the same on every run. */
function pseudoRandomBytes(n: number, seed = 0x9e3779b9): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Text of exactly `bytes` UTF-8 bytes, JSON-ish and compressible like real cached values. */
function text(bytes: number): string {
  const words = ["user", "session", "cart", "price", "éclair", "quantity", "true", "null", "2024-05-01"];
  const r = pseudoRandomBytes(bytes);
  let s = "";
  for (let i = 0; Buffer.byteLength(s) < bytes; i++) s += `"${words[r[i] % words.length]}":${r[i]},`;
  const b = Buffer.from(s).subarray(0, bytes);
  // Cut at a character boundary (é is 2 bytes), padding with ASCII to the exact size.
  const cut = b.toString("utf8").replace(/\uFFFD$/, "");
  return cut + " ".repeat(bytes - Buffer.byteLength(cut));
}

test("the magic is \\0RSC and format version 1", () => {
  expect([...COMPRESSION_MAGIC]).toEqual([0x00, 0x52, 0x53, 0x43, 0x01]);
  expect(COMPRESSION_MAGIC.toString("latin1")).toBe("\0RSC\x01");
});

test("the exported magic is a copy: changing it does not change the format", () => {
  const v = text(4096);
  COMPRESSION_MAGIC[4] = 0x02;
  try {
    const { stored } = encodeValue(v);
    expect((stored as Buffer).subarray(0, 5)).toEqual(Buffer.from([0, 0x52, 0x53, 0x43, 1]));
    expect(decodeValue(stored as Buffer, "string")).toBe(v);
  } finally {
    COMPRESSION_MAGIC[4] = 0x01;
  }
});

describe("round trip", () => {
  test.each([
    [1024, false],
    [1025, true],
    [10 * 1024, true],
    [100 * 1024, true],
  ])("%d bytes of text (compressed: %p)", (size, compressed) => {
    const v = text(size);
    expect(Buffer.byteLength(v)).toBe(size);
    const r = encodeValue(v);
    expect(r.compressed).toBe(compressed);
    expect(r.inBytes).toBe(size);
    expect(r.outBytes).toBe(Buffer.byteLength(r.stored));
    if (compressed) expect(r.outBytes).toBeLessThan(size / 2);
    expect(decodeValue(r.stored, "string")).toBe(v);
    expect(decodeValue(Buffer.from(r.stored), "string")).toBe(v);
    expect(decodeValue(Buffer.from(r.stored), "buffer")).toEqual(Buffer.from(v));
  });

  test("a Buffer round-trips as a Buffer", () => {
    const v = Buffer.from(text(10 * 1024));
    const r = encodeValue(v);
    expect(r.compressed).toBe(true);
    const back = decodeValue(r.stored as Buffer);
    expect(Buffer.isBuffer(back)).toBe(true);
    expect(back).toEqual(v);
  });

  test("binary data with a compressible structure round-trips byte for byte", () => {
    const v = Buffer.concat(Array.from({ length: 64 }, () => pseudoRandomBytes(256, 7)));
    const r = encodeValue(v);
    expect(r.compressed).toBe(true);
    expect(decodeValue(r.stored as Buffer, "buffer").equals(v)).toBe(true);
  });

  test("both ends of the gzip levels", () => {
    const v = text(50 * 1024);
    const fast = encodeValue(v, { level: 1 });
    const small = encodeValue(v, { level: 9 });
    expect(small.outBytes).toBeLessThanOrEqual(fast.outBytes);
    expect(decodeValue(fast.stored as Buffer, "string")).toBe(v);
    expect(decodeValue(small.stored as Buffer, "string")).toBe(v);
  });
});

describe("what stays raw", () => {
  test("incompressible bytes stay raw, the same Buffer", () => {
    const v = pseudoRandomBytes(64 * 1024);
    const r = encodeValue(v);
    expect(r).toEqual({ stored: v, compressed: false, inBytes: v.length, outBytes: v.length });
    expect(r.stored).toBe(v);
    expect(decodeValue(v)).toBe(v);
  });

  test("threshold boundary: at the threshold raw, one byte more compressed", () => {
    const at = "a".repeat(300);
    const above = "a".repeat(301);
    expect(encodeValue(at, { thresholdBytes: 300 })).toEqual({
      stored: at,
      compressed: false,
      inBytes: 300,
      outBytes: 300,
    });
    const r = encodeValue(above, { thresholdBytes: 300 });
    expect(r.compressed).toBe(true);
    expect(decodeValue(r.stored, "string")).toBe(above);
  });

  test("the default threshold is 1024 bytes", () => {
    expect(encodeValue("a".repeat(1024)).compressed).toBe(false);
    expect(encodeValue("a".repeat(1025)).compressed).toBe(true);
  });

  test("the threshold counts UTF-8 bytes, not characters", () => {
    const v = "é".repeat(600); // 600 characters, 1200 bytes
    const r = encodeValue(v);
    expect(r.inBytes).toBe(1200);
    expect(r.compressed).toBe(true);
    expect(decodeValue(r.stored, "string")).toBe(v);
  });

  test("a small string stays the same string, a small Buffer the same Buffer", () => {
    const s = "hello";
    const b = Buffer.from("hello");
    expect(encodeValue(s).stored).toBe(s);
    expect(encodeValue(b).stored).toBe(b);
    expect(encodeValue("").stored).toBe("");
  });

  test("a large string that does not shrink stays a string", () => {
    const v = pseudoRandomBytes(4096).toString("base64");
    const r = encodeValue(v, { thresholdBytes: 16 });
    // base64 of random bytes shrinks a little under gzip (6 bits per byte): accept either outcome,
    // but a raw one must be the string itself.
    if (!r.compressed) expect(r.stored).toBe(v);
    expect(decodeValue(Buffer.from(r.stored), "string")).toBe(v);
    const tiny = encodeValue("abcdefghijklmnopqrstuvwxyz", { thresholdBytes: 1 });
    expect(tiny).toEqual({ stored: "abcdefghijklmnopqrstuvwxyz", compressed: false, inBytes: 26, outBytes: 26 });
  });

  test("a value that itself starts with the magic is always compressed, so it reads back as written", () => {
    for (const v of [
      Buffer.concat([COMPRESSION_MAGIC, Buffer.from("x")]),
      Buffer.concat([COMPRESSION_MAGIC, zlib.gzipSync("looks compressed")]),
      Buffer.concat([COMPRESSION_MAGIC, pseudoRandomBytes(5000)]),
      "\0RSC\x01 a string",
    ]) {
      const r = encodeValue(v);
      expect(r.compressed).toBe(true);
      expect(decodeValue(r.stored as Buffer, "buffer")).toEqual(Buffer.isBuffer(v) ? v : Buffer.from(v));
    }
  });
});

describe("values this codec did not write stay readable", () => {
  test("null (a missing key) stays null", () => {
    expect(decodeValue(null)).toBeNull();
    expect(decodeValue(null, "string")).toBeNull();
    expect(decodeValue(null, "buffer")).toBeNull();
  });

  test("plain text, as a string or a Buffer", () => {
    expect(decodeValue("plain value")).toBe("plain value");
    expect(decodeValue(Buffer.from("plain value"), "string")).toBe("plain value");
    expect(decodeValue("plain value", "buffer")).toEqual(Buffer.from("plain value"));
    expect(decodeValue(Buffer.alloc(0), "string")).toBe("");
  });

  test("a raw gzip blob without the magic is returned as is, not inflated", () => {
    const blob = zlib.gzipSync(text(4096));
    expect(decodeValue(blob)).toBe(blob);
  });

  test.each([
    ["the magic alone", Buffer.from(COMPRESSION_MAGIC)],
    ["the magic then text", Buffer.concat([COMPRESSION_MAGIC, Buffer.from("not gzip at all")])],
    ["the magic then random bytes", Buffer.concat([COMPRESSION_MAGIC, pseudoRandomBytes(100)])],
    ["the magic then a truncated gzip", Buffer.concat([COMPRESSION_MAGIC, zlib.gzipSync(text(4096)).subarray(0, 200)])],
    [
      "the magic then gzip with a bad CRC",
      (() => {
        const gz = zlib.gzipSync(text(4096));
        gz[gz.length - 6] ^= 0xff;
        return Buffer.concat([COMPRESSION_MAGIC, gz]);
      })(),
    ],
    ["a magic of another version", Buffer.concat([Buffer.from([0, 0x52, 0x53, 0x43, 0x02]), zlib.gzipSync("v2")])],
    ["four bytes of the magic", COMPRESSION_MAGIC.subarray(0, 4)],
  ])("%s is returned as is", (_name, v) => {
    expect(decodeValue(v)).toBe(v);
    expect(decodeValue(v, "buffer")).toBe(v);
  });

  test("a string is never inflated, even if it starts like the magic", () => {
    // A compressed value read as a JS string has lost its non-UTF-8 bytes: it cannot be inflated.
    const stored = encodeValue(text(4096)).stored as Buffer;
    const mangled = stored.toString("utf8");
    expect(decodeValue(mangled)).toBe(mangled);
  });
});

describe("the documented format, checked independently", () => {
  test("stored = 5 magic bytes || a gzip member of the original bytes", () => {
    const v = text(10 * 1024);
    const stored = encodeValue(v).stored as Buffer;
    expect([...stored.subarray(0, 5)]).toEqual([0x00, 0x52, 0x53, 0x43, 0x01]);
    expect([...stored.subarray(5, 8)]).toEqual([0x1f, 0x8b, 0x08]); // gzip id, deflate
    // What FORMAT.md tells other languages to do: drop 5 bytes, gunzip.
    expect(zlib.gunzipSync(stored.subarray(5)).toString("utf8")).toBe(v);
  });

  test("a value another language compressed per FORMAT.md decodes", () => {
    const v = text(8 * 1024);
    const written = Buffer.concat([Buffer.from("\0RSC\x01", "latin1"), zlib.gzipSync(Buffer.from(v), { level: 9 })]);
    expect(decodeValue(written, "string")).toBe(v);
    // gzip allows several members; Python's gzip.compress of parts, concatenated, is still one value.
    const multi = Buffer.concat([
      Buffer.from("\0RSC\x01", "latin1"),
      zlib.gzipSync(v.slice(0, 100)),
      zlib.gzipSync(v.slice(100)),
    ]);
    expect(decodeValue(multi, "string")).toBe(v);
  });
});
