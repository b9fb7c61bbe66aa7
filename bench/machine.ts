/**
 * What every benchmark prints next to its figures: the machine's load at that moment
 * (the development machine is shared, so a figure means little without it).
 */
import { loadavg, cpus } from 'node:os';

/** `load average 1.23, 2.34, 3.45 (2 cores)`, as `uptime` shows it. */
export function loadLine(): string {
  const [one, five, fifteen] = loadavg().map((x) => x.toFixed(2));
  return `load average ${one}, ${five}, ${fifteen} (${cpus().length} cores)`;
}

/** Text histogram of latencies in ms, bucket edges doubling from `first` ms. */
export function histogram(values: readonly number[], first = 0.25, buckets = 10): string[] {
  const edges = Array.from({ length: buckets }, (_, i) => first * 2 ** i);
  const counts = new Array<number>(buckets + 1).fill(0);
  for (const v of values) {
    const i = edges.findIndex((e) => v < e);
    counts[i === -1 ? buckets : i] = (counts[i === -1 ? buckets : i] ?? 0) + 1;
  }
  const most = Math.max(1, ...counts);
  return counts.map((n, i) => {
    const label =
      i === buckets ? `≥ ${edges[buckets - 1] ?? 0} ms` : `< ${edges[i] ?? 0} ms`.padEnd(11);
    const bar = '#'.repeat(Math.round((n / most) * 40));
    return `    ${label.padEnd(11)} ${String(n).padStart(6)} ${bar}`;
  });
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

/** The Dispatcher's per-kind timeouts in the benches: one minute for every kind. */
export const BENCH_TIMEOUTS_MS = {
  discover: 60_000,
  grant: 60_000,
  revoke: 60_000,
  rotate: 60_000,
  cleanup: 60_000,
  check: 60_000,
} as const;
