/**
 * What every benchmark prints next to its figures: the machine's load at that moment
 * (the development machine is shared, so a figure means little without it), and, for a
 * database server on this machine, the CPU it used (/proc).
 */
import { readFileSync } from 'node:fs';
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

/**
 * CPU time (ms, user + system) of a local process: all its threads, and with `tree` also
 * its live children and the children it has reaped (a PostgreSQL postmaster: every
 * backend, including those of connections closed meanwhile). Undefined when /proc cannot
 * tell (another machine, another OS, no permission): the benches then print no such figure.
 */
export function processCpuMs(pid: number, tree = false): number | undefined {
  const tick = 1000 / 100; // USER_HZ
  const fields = (p: number | string): string[] | undefined => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    } catch {
      return undefined;
    }
  };
  const own = fields(pid);
  if (own === undefined) return undefined;
  // utime, stime; then cutime, cstime (reaped children)
  let ticks = Number(own[11]) + Number(own[12]);
  if (tree) {
    ticks += Number(own[13]) + Number(own[14]);
    let children: string[] = [];
    try {
      children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
    } catch {
      return undefined;
    }
    for (const c of children.filter(Boolean)) {
      const f = fields(c);
      if (f !== undefined) ticks += Number(f[11]) + Number(f[12]);
    }
  }
  return Number.isFinite(ticks) ? ticks * tick : undefined;
}

/** The parent process id of a local process, undefined when /proc cannot tell. */
export function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(ppid) && ppid > 1 ? ppid : undefined;
  } catch {
    return undefined;
  }
}

/** The command name of a local process (`/proc/<pid>/comm`), undefined when unreadable. */
export function processName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}
