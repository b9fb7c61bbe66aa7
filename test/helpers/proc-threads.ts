/**
 * What every thread of a (possibly stuck) process is doing, read from Linux's /proc by
 * another process: the test watchdog (scripts/test-watchdog.ts) prints it for each
 * process of a run it stops (issue 18).
 *
 * Why from outside: the diagnostics a test process writes itself (SIGUSR2, see
 * progress-reporter.ts) need its main thread, and say only *that* a file-system request
 * is pending (`FSReqPromise`), not what it waits for. Here each thread's current system
 * call comes from `/proc/<pid>/task/<tid>/syscall`, with the file a descriptor points to
 * (`/proc/<pid>/fd/<n>`) or the path a path argument names (read from `/proc/<pid>/mem`).
 * A libuv pool thread blocked on, say, `openat` of a FIFO or `read` of a pipe, or a main
 * thread blocked in a synchronous `write` to a full stdout pipe, is then named directly.
 *
 * Glossary:
 * - waiting: a thread parked where an idle thread parks (`futex`, `epoll_wait`, ...).
 *   A Node.js process has one event-loop thread in `epoll_wait` and idle pool and V8
 *   threads on futexes; none of that is a finding.
 * - blocked: any other system call a thread is in, e.g. `openat`, `read`, `write`,
 *   `connect`; the thread has not returned from it.
 * Only reads, all synchronous: nothing here needs the event loop or the thread pool.
 * Outside Linux (no /proc) every function returns nothing.
 */
import {
  closeSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  readlinkSync,
  statSync,
} from 'node:fs';

/** Syscalls whose first argument is a file descriptor. */
const FD_CALLS = new Set([
  'read',
  'write',
  'pread64',
  'pwrite64',
  'readv',
  'writev',
  'fstat',
  'fsync',
  'fdatasync',
  'flock',
  'fcntl',
  'getdents64',
  'connect',
  'accept',
  'accept4',
  'sendto',
  'recvfrom',
  'sendmsg',
  'recvmsg',
  'ftruncate',
  'close',
]);
/** Syscalls with a path in their second argument (`*at` calls: dirfd, path, ...). */
const PATH_ARG1_CALLS = new Set([
  'openat',
  'newfstatat',
  'statx',
  'unlinkat',
  'mkdirat',
  'renameat',
  'renameat2',
]);
/** Syscalls with a path in their first argument (x86_64 only). */
const PATH_ARG0_CALLS = new Set(['open', 'stat', 'lstat', 'access', 'unlink', 'mkdir', 'rename']);
/** Where idle threads park. */
export const WAITING_CALLS = new Set([
  'futex',
  'epoll_wait',
  'epoll_pwait',
  'epoll_pwait2',
  'poll',
  'ppoll',
  'select',
  'pselect6',
  'nanosleep',
  'clock_nanosleep',
  'wait4',
  'waitid',
  'pause',
  'rt_sigsuspend',
  'rt_sigtimedwait',
  'io_getevents',
  'sched_yield',
]);

const X64: Record<number, string> = {
  0: 'read',
  1: 'write',
  2: 'open',
  3: 'close',
  4: 'stat',
  5: 'fstat',
  6: 'lstat',
  7: 'poll',
  17: 'pread64',
  18: 'pwrite64',
  19: 'readv',
  20: 'writev',
  21: 'access',
  23: 'select',
  24: 'sched_yield',
  34: 'pause',
  35: 'nanosleep',
  42: 'connect',
  43: 'accept',
  44: 'sendto',
  45: 'recvfrom',
  46: 'sendmsg',
  47: 'recvmsg',
  61: 'wait4',
  72: 'fcntl',
  73: 'flock',
  74: 'fsync',
  75: 'fdatasync',
  77: 'ftruncate',
  82: 'rename',
  83: 'mkdir',
  87: 'unlink',
  128: 'rt_sigtimedwait',
  130: 'rt_sigsuspend',
  202: 'futex',
  208: 'io_getevents',
  217: 'getdents64',
  230: 'clock_nanosleep',
  232: 'epoll_wait',
  247: 'waitid',
  257: 'openat',
  258: 'mkdirat',
  262: 'newfstatat',
  263: 'unlinkat',
  264: 'renameat',
  270: 'pselect6',
  271: 'ppoll',
  281: 'epoll_pwait',
  288: 'accept4',
  316: 'renameat2',
  332: 'statx',
  426: 'io_uring_enter',
  441: 'epoll_pwait2',
};
const ARM64: Record<number, string> = {
  22: 'epoll_pwait',
  25: 'fcntl',
  32: 'flock',
  34: 'mkdirat',
  35: 'unlinkat',
  38: 'renameat',
  56: 'openat',
  57: 'close',
  61: 'getdents64',
  63: 'read',
  64: 'write',
  65: 'readv',
  66: 'writev',
  67: 'pread64',
  68: 'pwrite64',
  72: 'pselect6',
  73: 'ppoll',
  79: 'newfstatat',
  80: 'fstat',
  82: 'fsync',
  83: 'fdatasync',
  98: 'futex',
  101: 'nanosleep',
  115: 'clock_nanosleep',
  124: 'sched_yield',
  133: 'rt_sigsuspend',
  137: 'rt_sigtimedwait',
  202: 'accept',
  203: 'connect',
  206: 'sendto',
  207: 'recvfrom',
  211: 'sendmsg',
  212: 'recvmsg',
  242: 'accept4',
  260: 'wait4',
  276: 'renameat2',
  291: 'statx',
  426: 'io_uring_enter',
  441: 'epoll_pwait2',
};

export function syscallName(nr: number, arch: string = process.arch): string {
  const table = arch === 'arm64' ? ARM64 : arch === 'x64' ? X64 : {};
  return table[nr] ?? `syscall ${nr}`;
}

export interface ThreadState {
  tid: number;
  /** `R` running, `S` sleeping, `D` uninterruptible (disk), `Z`, ... */
  state: string;
  /**
   * The system call it is in, `running` when on a CPU, `busy` when it moved between two
   * looks (see `unchangedSince`), or `?` when unreadable.
   */
  call: string;
  /** What the call is about: the descriptor's target or the path argument. */
  target?: string;
  /** True when parked where idle threads park (see the glossary). */
  waiting: boolean;
}

export interface ProcessThreads {
  pid: number;
  command: string;
  /** libuv's thread pool size in that process (`UV_THREADPOOL_SIZE`, default 4). */
  poolSize: number;
  threads: ThreadState[];
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** What `/proc/<pid>/fd/<fd>` points to, with "(FIFO)" for a named pipe. */
function fdTarget(pid: number, fd: number): string | undefined {
  try {
    return describePath(readlinkSync(`/proc/${pid}/fd/${fd}`));
  } catch {
    return undefined;
  }
}

function describePath(path: string): string {
  if (!path.startsWith('/')) return path; // pipe:[n], socket:[n], anon_inode:...
  try {
    const st = statSync(path);
    if (st.isFIFO()) return `${path} (FIFO)`;
    if (st.isSocket()) return `${path} (socket)`;
    if (st.isCharacterDevice()) return `${path} (device)`;
  } catch {
    // gone, or not ours to stat
  }
  return path;
}

/** A NUL-terminated string from the process's memory (needs the right to trace it). */
function readString(pid: number, address: number): string | undefined {
  if (!Number.isSafeInteger(address) || address <= 0) return undefined;
  let fd: number | undefined;
  try {
    fd = openSync(`/proc/${pid}/mem`, 'r');
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, address);
    const end = buf.subarray(0, n).indexOf(0);
    return buf.subarray(0, end === -1 ? n : end).toString('utf8');
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Parses one `/proc/<pid>/task/<tid>/syscall` line into call name and target. */
export function describeSyscall(
  pid: number,
  line: string,
  arch: string = process.arch,
): { call: string; target?: string } {
  const parts = line.trim().split(/\s+/);
  if (parts[0] === 'running') return { call: 'running' };
  const nr = Number(parts[0]);
  if (!Number.isInteger(nr) || nr < 0) return { call: '?' };
  const call = syscallName(nr, arch);
  const arg = (i: number): number => Number.parseInt(parts[1 + i] ?? '', 16);
  let target: string | undefined;
  if (FD_CALLS.has(call)) {
    const fd = arg(0);
    if (Number.isInteger(fd) && fd >= 0) target = fdTarget(pid, fd) ?? `fd ${fd}`;
  } else if (PATH_ARG1_CALLS.has(call)) {
    const path = readString(pid, arg(1));
    if (path !== undefined) target = describePath(path);
  } else if (PATH_ARG0_CALLS.has(call)) {
    const path = readString(pid, arg(0));
    if (path !== undefined) target = describePath(path);
  }
  return target === undefined ? { call } : { call, target };
}

/** Every thread of `pid`, or `undefined` when the process is gone or /proc is absent. */
export function inspectProcess(pid: number): ProcessThreads | undefined {
  let tids: number[];
  try {
    tids = readdirSync(`/proc/${pid}/task`)
      .map(Number)
      .filter((t) => Number.isInteger(t))
      .sort((a, b) => a - b);
  } catch {
    return undefined;
  }
  const command = (read(`/proc/${pid}/cmdline`) ?? '').split('\0').filter(Boolean).join(' ');
  const envPool = (read(`/proc/${pid}/environ`) ?? '')
    .split('\0')
    .find((e) => e.startsWith('UV_THREADPOOL_SIZE='));
  const poolSize = Number(envPool?.slice('UV_THREADPOOL_SIZE='.length)) || 4;
  const threads: ThreadState[] = [];
  for (const tid of tids) {
    const base = `/proc/${pid}/task/${tid}`;
    // "pid (comm) S ..." — comm may contain spaces and parentheses.
    const stat = read(`${base}/stat`);
    const state = stat?.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) ?? '?';
    const sys = read(`${base}/syscall`);
    const { call, target } = sys === undefined ? { call: '?' } : describeSyscall(pid, sys);
    threads.push({
      tid,
      state,
      call,
      waiting: WAITING_CALLS.has(call),
      ...(target === undefined ? {} : { target }),
    });
  }
  return { pid, command, poolSize, threads };
}

/**
 * `later` with every thread that was not in the same call on the same target in `earlier`
 * marked `busy`: of two looks a moment apart, only what did not move is "blocked".
 */
export function unchangedSince(earlier: ProcessThreads, later: ProcessThreads): ProcessThreads {
  const before = new Map(earlier.threads.map((t) => [t.tid, t]));
  return {
    ...later,
    threads: later.threads.map((t) => {
      const b = before.get(t.tid);
      if (t.waiting || t.call === 'running' || (b && b.call === t.call && b.target === t.target))
        return t;
      return { tid: t.tid, state: t.state, call: 'busy', waiting: false };
    }),
  };
}

/** Members of process group `pgid` (the test command and everything it started). */
export function processGroupMembers(pgid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const e of entries) {
    const pid = Number(e);
    if (!Number.isInteger(pid)) continue;
    const stat = read(`/proc/${pid}/stat`);
    if (!stat) continue;
    // Fields after "(comm) ": state ppid pgrp ...
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(rest[2]) === pgid) pids.push(pid);
  }
  return pids.sort((a, b) => a - b);
}

/**
 * One line for a process: the main thread's call, then the blocked threads grouped by
 * call and target, then how many wait. E.g.
 * `main thread in epoll_wait; 4 threads blocked in openat /tmp/x (FIFO); 7 waiting`.
 */
export function summariseThreads(p: ProcessThreads): string {
  const main = p.threads.find((t) => t.tid === p.pid);
  const parts: string[] = [];
  if (main) {
    parts.push(
      `main thread ${main.call === 'running' ? 'running' : `in ${main.call}`}` +
        (main.target ? ` ${main.target}` : '') +
        (main.state === 'D' ? ' (uninterruptible)' : ''),
    );
  }
  const groups = new Map<string, number>();
  let waiting = 0;
  for (const t of p.threads) {
    if (t.tid === p.pid) continue;
    if (t.waiting) {
      waiting++;
      continue;
    }
    const what =
      t.call === 'running' || t.call === 'busy'
        ? t.call
        : `blocked in ${t.call}` +
          (t.target ? ` ${t.target}` : '') +
          (t.state === 'D' ? ' (uninterruptible)' : '');
    groups.set(what, (groups.get(what) ?? 0) + 1);
  }
  let blocked = 0;
  for (const [what, n] of groups) {
    parts.push(`${n} thread${n > 1 ? 's' : ''} ${what}`);
    if (what.startsWith('blocked')) blocked += n;
  }
  parts.push(`${waiting} waiting`);
  const line = parts.join('; ');
  // Pool threads are not told apart from V8's here; as many blocked threads as the pool
  // has is the signature of an exhausted pool, in which every later fs, dns.lookup,
  // crypto or zlib request of the process waits behind them.
  return blocked >= p.poolSize
    ? `${line} — as many blocked threads as the libuv pool has (${p.poolSize}): ` +
        'its later file-system requests cannot run'
    : line;
}
