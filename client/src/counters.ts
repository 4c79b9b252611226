/**
 * What the client did to ride out trouble, as plain numbers the app can export to its metrics: a
 * mutable record the client increments, so reading it costs nothing and it serialises as is.
 */
export interface ClientCounters {
  /** Command retries (after the first attempt). */
  retries: number;
  /** Reconnect attempts node-redis was told to make. */
  reconnects: number;
  /** Reads answered from the in-memory fallback. */
  fallbackHits: number;
  /** Reads whose answer was stale (older than what Redis may hold now). */
  staleReads: number;
  /** Writes held in the outage buffer. */
  bufferedWrites: number;
  /** Buffered writes replayed to Redis. */
  replayedWrites: number;
  /** Values stored compressed, and their bytes before and after (magic included). */
  compressedValues: number;
  compressionInBytes: number;
  compressionOutBytes: number;
  /** Sentinel topology: moves to a new primary the Sentinels announced (`+switch-master`). */
  primaryMovesAnnounced: number;
  /** Sentinel topology: moves to a new primary found by asking the Sentinels after a failed attempt. */
  primaryMovesFound: number;
}

/** All counters at zero. */
export function newCounters(): ClientCounters {
  return {
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
  };
}

/**
 * Bytes in per byte stored, over the values that were compressed (2 = half the size); 1 while none
 * was, so a dashboard shows "no gain" rather than a division by zero.
 */
export function compressionRatio(c: ClientCounters): number {
  return c.compressedValues > 0 && c.compressionOutBytes > 0 ? c.compressionInBytes / c.compressionOutBytes : 1;
}
