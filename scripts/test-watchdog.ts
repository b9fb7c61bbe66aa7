/**
 * Runs a test command and stops it when it stops making progress, so that a hung test
 * run fails in minutes with a message instead of sitting until CI gives up (issue 18).
 *
 * Usage:
 *   node --import tsx scripts/test-watchdog.ts [--idle-seconds N] [--total-seconds M] -- <command...>
 *
 * - Progress is the growth of the progress log that test/helpers/progress-reporter.ts
 *   writes (a file queued, started or finished, a test finished). The command gets
 *   `LATCHKEY_TEST_PROGRESS_DIR` pointing at a fresh directory; vitest.config.ts turns
 *   the reporter on when it is set.
 * - After `--idle-seconds` (default 300) without progress, or `--total-seconds` (default
 *   1200) in all, the watchdog prints which files were running and which never finished,
 *   what every thread of every process of the run is blocked in (read from /proc by the
 *   watchdog itself, test/helpers/proc-threads.ts: it needs nothing from a stuck
 *   process), asks every registered test process for its diagnostics (SIGUSR2: the file
 *   it holds and what keeps its event loop alive), then ends the command's whole process
 *   group (SIGTERM, SIGKILL 5 s later) and exits 124.
 * - Otherwise it exits with the command's own exit code.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import {
  DIAG_SIGNAL,
  PIDS_DIR,
  PROGRESS_DIR_ENV,
  PROGRESS_FILE,
  type Diagnostics,
  type ProgressEvent,
} from '../test/helpers/progress-reporter.js';
import {
  inspectProcess,
  processGroupMembers,
  summariseThreads,
  unchangedSince,
  type ProcessThreads,
} from '../test/helpers/proc-threads.js';

export const HANG_EXIT_CODE = 124;
const POLL_MS = 500;
const DIAG_WAIT_MS = 3_000;
const KILL_GRACE_MS = 5_000;
const THREAD_LOOK_GAP_MS = 1_000;

export interface WatchdogOptions {
  idleSeconds: number;
  totalSeconds: number;
  command: string[];
}

export function parseArgs(argv: readonly string[]): WatchdogOptions {
  const opts: WatchdogOptions = { idleSeconds: 300, totalSeconds: 1200, command: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      opts.command = argv.slice(i + 1);
      break;
    }
    const value = Number(argv[i + 1]);
    if ((arg === '--idle-seconds' || arg === '--total-seconds') && value > 0) {
      if (arg === '--idle-seconds') opts.idleSeconds = value;
      else opts.totalSeconds = value;
      i++;
      continue;
    }
    throw new Error(`test-watchdog: unexpected argument ${String(arg)}`);
  }
  if (opts.command.length === 0) throw new Error('test-watchdog: no command after --');
  return opts;
}

interface FileStates {
  all: string[];
  running: Set<string>;
  finished: Set<string>;
  passed: number;
  failed: number;
}

function readEvents(dir: string): ProgressEvent[] {
  const path = join(dir, PROGRESS_FILE);
  if (!existsSync(path)) return [];
  const events: ProgressEvent[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      events.push(JSON.parse(line) as ProgressEvent);
    } catch {
      // a line being written right now
    }
  }
  return events;
}

function fileStates(events: readonly ProgressEvent[]): FileStates {
  const s: FileStates = { all: [], running: new Set(), finished: new Set(), passed: 0, failed: 0 };
  for (const e of events) {
    if (e.type === 'run-start') s.all = e.files;
    else if (e.type === 'queued' || e.type === 'start') s.running.add(e.file);
    else if (e.type === 'end') {
      s.running.delete(e.file);
      s.finished.add(e.file);
    } else if (e.type === 'test') {
      if (e.state === 'passed') s.passed++;
      else if (e.state === 'failed') s.failed++;
    }
  }
  return s;
}

function progressSize(dir: string): number {
  try {
    return statSync(join(dir, PROGRESS_FILE)).size;
  } catch {
    return 0;
  }
}

/** Registered test processes and their role (`main`, `worker`). */
function registeredRoles(dir: string): Map<number, string> {
  const roles = new Map<number, string>();
  for (const pid of registeredPids(dir)) {
    try {
      roles.set(pid, readFileSync(join(dir, PIDS_DIR, String(pid)), 'utf8').trim());
    } catch {
      // gone
    }
  }
  return roles;
}

function registeredPids(dir: string): number[] {
  try {
    return readdirSync(join(dir, PIDS_DIR))
      .map(Number)
      .filter((pid) => Number.isInteger(pid) && pid > 0);
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Asks every live registered process for diagnostics and collects what arrives. */
async function collectDiagnostics(dir: string): Promise<Diagnostics[]> {
  const pids = registeredPids(dir).filter(alive);
  for (const pid of pids) {
    try {
      process.kill(pid, DIAG_SIGNAL);
    } catch {
      // exited meanwhile
    }
  }
  const deadline = Date.now() + DIAG_WAIT_MS;
  const got = new Map<number, Diagnostics>();
  while (Date.now() < deadline && got.size < pids.length) {
    await sleep(100);
    for (const pid of pids) {
      const path = join(dir, `diag-${pid}.json`);
      if (!got.has(pid) && existsSync(path)) {
        try {
          got.set(pid, JSON.parse(readFileSync(path, 'utf8')) as Diagnostics);
        } catch {
          // still being written
        }
      }
    }
  }
  return [...got.values()];
}

function summarise(resources: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const r of resources) counts.set(r, (counts.get(r) ?? 0) + 1);
  if (counts.size === 0) return 'nothing';
  return [...counts].map(([r, n]) => (n > 1 ? `${r} x${n}` : r)).join(', ');
}

/** `node …/vitest/vitest.mjs run`, shortened for one line. */
function shortCommand(command: string, cwd: string): string {
  const short = command
    .split(' ')
    .map((a) => (a.startsWith('/') ? relative(cwd, a) || '.' : a))
    .map((a) => (a.includes('node_modules/') ? `…/${a.split('node_modules/').pop()}` : a))
    .join(' ');
  return short.length > 100 ? `${short.slice(0, 99)}…` : short;
}

function report(
  reason: string,
  states: FileStates,
  diags: readonly Diagnostics[],
  threads: readonly ProcessThreads[],
  roles: ReadonlyMap<number, string>,
  cwd: string,
): string {
  const lines = [`test-watchdog: ${reason}; stopping the test run.`];
  const notFinished = states.all.filter((f) => !states.finished.has(f));
  lines.push(
    `test-watchdog: ${states.finished.size} of ${states.all.length || '?'} files finished ` +
      `(${states.passed} tests passed, ${states.failed} failed).`,
  );
  lines.push(
    `test-watchdog: running (started, not finished): ${[...states.running].join(', ') || 'none'}`,
  );
  const waiting = notFinished.filter((f) => !states.running.has(f));
  lines.push(`test-watchdog: not started: ${waiting.length ? waiting.join(', ') : 'none'}`);
  // Test processes, and any process with a thread not simply waiting, get a line each;
  // the rest (npm, sh, an idle PostgreSQL's processes) one line together.
  const idle = new Map<string, number>();
  for (const p of threads) {
    const role = roles.get(p.pid);
    if (role === undefined && p.threads.every((t) => t.waiting)) {
      const name = p.command.split(' ')[0]?.split('/').pop() || '?';
      idle.set(name, (idle.get(name) ?? 0) + 1);
      continue;
    }
    const who = role ?? shortCommand(p.command, cwd);
    lines.push(`test-watchdog: threads of pid ${p.pid} (${who}): ${summariseThreads(p)}`);
  }
  if (idle.size > 0) {
    const names = [...idle].map(([n, c]) => (c > 1 ? `${n} x${c}` : n)).join(', ');
    lines.push(`test-watchdog: other processes of the run, every thread waiting: ${names}`);
  }
  if (diags.length === 0) lines.push('test-watchdog: no test process answered for diagnostics.');
  for (const d of diags) {
    const files = d.files.map((f) => (f.startsWith('/') ? relative(cwd, f) : f));
    lines.push(
      `test-watchdog: ${d.role} pid ${d.pid} holding ${files.join(', ') || 'no file'}; ` +
        `alive because of: ${summarise(d.resources)}`,
    );
  }
  // The plain line .ci/run ends with when the run finishes (there from the JSON report).
  lines.push(
    `${states.passed} passed, ${states.failed} failed (the test run was stopped by the watchdog)`,
  );
  return lines.join('\n');
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function runWatchdog(opts: WatchdogOptions): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-test-progress-'));
  const [cmd, ...args] = opts.command as [string, ...string[]];
  const child = spawn(cmd, args, {
    stdio: 'inherit',
    detached: true, // its own process group, so that the whole tree can be ended
    env: { ...process.env, [PROGRESS_DIR_ENV]: dir },
  });
  const childPid = child.pid;
  const exit = new Promise<number>((resolve) => {
    child.once('error', (err) => {
      process.stderr.write(`test-watchdog: cannot start ${cmd}: ${err.message}\n`);
      resolve(127);
    });
    child.once('exit', (code) => resolve(code ?? 1));
  });
  const forward = (signal: NodeJS.Signals): void => {
    if (childPid) killGroup(childPid, signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);

  const started = Date.now();
  let lastSize = -1;
  let lastProgress = started;
  let reason: string | undefined;
  let done = false;
  void exit.then(() => {
    done = true;
  });
  while (!done) {
    await Promise.race([exit, sleep(POLL_MS)]);
    if (done) break;
    const size = progressSize(dir);
    const now = Date.now();
    if (size !== lastSize) {
      lastSize = size;
      lastProgress = now;
    }
    if (now - lastProgress > opts.idleSeconds * 1000) {
      reason = `no progress for ${opts.idleSeconds} s (no test or file finished or started)`;
    } else if (now - started > opts.totalSeconds * 1000) {
      reason = `the run exceeded its overall limit of ${opts.totalSeconds} s`;
    }
    if (reason) break;
  }

  let code: number;
  if (reason && childPid) {
    // Threads first (the SIGUSR2 handlers below briefly wake the processes), looked at
    // twice a second apart: a thread only passing through a call is not "blocked" in it.
    const first = new Map<number, ProcessThreads>();
    for (const pid of processGroupMembers(childPid)) {
      const p = inspectProcess(pid);
      if (p) first.set(pid, p);
    }
    await sleep(THREAD_LOOK_GAP_MS);
    const threads: ProcessThreads[] = [];
    for (const [pid, earlier] of first) {
      const later = inspectProcess(pid);
      if (later) threads.push(unchangedSince(earlier, later));
    }
    const diags = await collectDiagnostics(dir);
    process.stderr.write(
      `\n${report(reason, fileStates(readEvents(dir)), diags, threads, registeredRoles(dir), process.cwd())}\n`,
    );
    killGroup(childPid, 'SIGTERM');
    const grace = setTimeout(() => killGroup(childPid, 'SIGKILL'), KILL_GRACE_MS);
    await exit;
    clearTimeout(grace);
    // Members of the group that outlive the leader (a fork worker, a spawned agent).
    await sleep(200);
    killGroup(childPid, 'SIGKILL');
    code = HANG_EXIT_CODE;
  } else {
    code = await exit;
    // Whatever the command left running in its group (a leaked agent or worker) would
    // keep CI's output pipe open: say so and end it.
    if (childPid && groupAlive(childPid)) {
      process.stderr.write('test-watchdog: processes outlived the test run; killing them.\n');
      killGroup(childPid, 'SIGKILL');
    }
  }
  process.off('SIGINT', forward);
  process.off('SIGTERM', forward);
  rmSync(dir, { recursive: true, force: true });
  return code;
}

const invokedDirectly = process.argv[1]?.endsWith('test-watchdog.ts') ?? false;
if (invokedDirectly) {
  try {
    process.exitCode = await runWatchdog(parseArgs(process.argv.slice(2)));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}
