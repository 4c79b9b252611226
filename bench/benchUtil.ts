/** Small helpers for the benchmark scripts: order statistics and where results go. */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ROOT } from "../lab/stackFiles";

export const RESULTS_DIR = path.join(ROOT, "bench-results");

export interface Stats {
  n: number;
  median: number;
  p95: number;
  max: number;
  min: number;
}

/** Nearest-rank percentiles. */
export function stats(values: number[]): Stats {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return { n: 0, median: Number.NaN, p95: Number.NaN, max: Number.NaN, min: Number.NaN };
  const rank = (p: number) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))];
  const median = v.length % 2 === 1 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  return { n: v.length, median, p95: rank(0.95), max: v[v.length - 1], min: v[0] };
}

export function writeResults(name: string, data: unknown): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(data, null, 2) + "\n");
  return file;
}

export function machine(): Record<string, string | number> {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "?",
    memGiB: Math.round(os.totalmem() / 1024 ** 3),
    node: process.version,
    date: new Date().toISOString(),
  };
}
