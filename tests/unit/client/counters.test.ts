/** The client's counters and the compression ratio derived from them. */
import { compressionRatio, newCounters } from "../../../client/src/counters";

test("new counters are all zero, and a fresh object each time", () => {
  const c = newCounters();
  expect(c).toEqual({
    retries: 0,
    reconnects: 0,
    fallbackHits: 0,
    staleReads: 0,
    bufferedWrites: 0,
    replayedWrites: 0,
    compressedValues: 0,
    compressionInBytes: 0,
    compressionOutBytes: 0,
    primaryMovesAnnounced: 0,
    primaryMovesFound: 0,
  });
  c.retries++;
  expect(newCounters().retries).toBe(0);
});

test("the compression ratio is bytes in per byte stored", () => {
  const c = { ...newCounters(), compressedValues: 2, compressionInBytes: 10_000, compressionOutBytes: 2_500 };
  expect(compressionRatio(c)).toBe(4);
});

test("the compression ratio is 1 while nothing was compressed", () => {
  expect(compressionRatio(newCounters())).toBe(1);
  expect(compressionRatio({ ...newCounters(), compressionInBytes: 5 })).toBe(1);
  expect(compressionRatio({ ...newCounters(), compressedValues: 1, compressionInBytes: 5 })).toBe(1);
});
