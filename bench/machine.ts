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

/** Milliseconds per clock tick of /proc's CPU times (USER_HZ, 100 on Linux). */
export const PROC_TICK_MS = 1000 / 100;

/**
 * One /proc `stat` file (`/proc/<pid>/stat`, `/proc/<pid>/task/<tid>/stat`): the command
 * name and the fields after it, so that `fields[1]` is the parent pid, `fields[11]` and
 * `fields[12]` user and system ticks, `fields[13]` and `fields[14]` those of reaped
 * children. Undefined when it cannot be read (gone, another OS, no permission).
 */
export function procStat(path: string): { name: string; fields: string[] } | undefined {
  let stat: string;
  try {
    stat = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const end = stat.lastIndexOf(')');
  return { name: stat.slice(stat.indexOf('(') + 1, end), fields: stat.slice(end + 2).split(' ') };
}

/** Whether `host` names this machine (the benches read a local server's CPU from /proc). */
export function isLoopback(host: string): boolean {
  return ['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host);
}

/**
 * CPU time (ms, user + system) of a local process: all its threads, and with `tree` also
 * its live children and the children it has reaped (a PostgreSQL postmaster: every
 * backend, including those of connections closed meanwhile). Undefined when /proc cannot
 * tell (another machine, another OS, no permission): the benches then print no such figure.
 */
export function processCpuMs(pid: number, tree = false): number | undefined {
  const own = procStat(`/proc/${pid}/stat`)?.fields;
  if (own === undefined) return undefined;
  let ticks = Number(own[11]) + Number(own[12]);
  if (tree) {
    ticks += Number(own[13]) + Number(own[14]);
    let children: string[];
    try {
      children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
    } catch {
      return undefined;
    }
    for (const c of children.filter(Boolean)) {
      const f = procStat(`/proc/${c}/stat`)?.fields;
      if (f !== undefined) ticks += Number(f[11]) + Number(f[12]);
    }
  }
  return Number.isFinite(ticks) ? ticks * PROC_TICK_MS : undefined;
}

/** The parent process id of a local process, undefined when /proc cannot tell. */
export function parentPid(pid: number): number | undefined {
  const ppid = Number(procStat(`/proc/${pid}/stat`)?.fields[1]);
  return Number.isInteger(ppid) && ppid > 1 ? ppid : undefined;
}

/** The command name of a local process (`/proc/<pid>/comm`), undefined when unreadable. */
export function processName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}
