/**
 * test/helpers/proc-threads.ts on real stuck processes: what the test watchdog prints for
 * each process of a run it stops. Each case is one candidate cause of issue 18's hang,
 * and each must be named from outside the process, by the system call it is stuck in.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  inspectProcess,
  processGroupMembers,
  summariseThreads,
  unchangedSince,
  type ProcessThreads,
  type ThreadState,
} from '../../helpers/proc-threads.js';

const tmp = mkdtempSync(join(tmpdir(), 'latchkey-proc-threads-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) {
    try {
      process.kill(c.pid ?? 0, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

function node(script: string, opts: { env?: NodeJS.ProcessEnv; detached?: boolean } = {}) {
  const child = spawn(process.execPath, ['-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: opts.env ?? process.env,
    detached: opts.detached ?? false,
  });
  children.push(child);
  return child;
}

/** Inspects `pid` until `done` holds for what is seen (a stuck state takes a moment to reach). */
async function until(
  pid: number,
  done: (p: ProcessThreads) => boolean,
): Promise<ProcessThreads | undefined> {
  let seen: ProcessThreads | undefined;
  for (let i = 0; i < 100; i++) {
    seen = inspectProcess(pid);
    if (seen && done(seen)) return seen;
    await new Promise((r) => setTimeout(r, 50));
  }
  return seen;
}

const fifoPath = (name: string): string => {
  const p = join(tmp, name);
  execFileSync('mkfifo', [p]);
  return p;
};

/** Blocks `n` pool threads on opens of a FIFO nobody writes, then asks for one more fs request. */
const blockPool = (fifo: string, n: number): string => `
  const fs = require('node:fs/promises');
  for (let i = 0; i < ${n}; i++) fs.open(${JSON.stringify(fifo)}, 'r');
  fs.stat(__filename).then(() => console.log('stat done'), () => console.log('stat done'));
  setInterval(() => {}, 1000);
`;

describe.runIf(process.platform === 'linux')('proc-threads', () => {
  it('names a thread pool exhausted by opens of a FIFO, the target included', async () => {
    const fifo = fifoPath('pool');
    const child = node(blockPool(fifo, 4));
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const seen = await until(
      child.pid ?? 0,
      (p) => p.threads.filter((t) => t.call === 'openat').length === 4,
    );
    expect(seen).toBeDefined();
    const line = summariseThreads(seen as ProcessThreads);
    expect(line).toMatch(/^main thread in epoll_p?wait; /);
    expect(line).toContain(`4 threads blocked in openat ${fifo} (FIFO)`);
    expect(line).toContain('as many blocked threads as the libuv pool has (4)');
    // And that is a hang: the later request never ran.
    await new Promise((r) => setTimeout(r, 300));
    expect(out).toBe('');
  });

  it('reads the pool size from the process: with UV_THREADPOOL_SIZE=8, four blocked threads leave it working', async () => {
    const fifo = fifoPath('pool8');
    const child = node(blockPool(fifo, 4), { env: { ...process.env, UV_THREADPOOL_SIZE: '8' } });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const seen = await until(
      child.pid ?? 0,
      (p) => p.threads.filter((t) => t.call === 'openat').length === 4,
    );
    expect(seen?.poolSize).toBe(8);
    const line = summariseThreads(seen as ProcessThreads);
    expect(line).toContain(`4 threads blocked in openat ${fifo} (FIFO)`);
    expect(line).not.toContain('as many blocked threads');
    for (let i = 0; i < 50 && !out; i++) await new Promise((r) => setTimeout(r, 50));
    expect(out).toContain('stat done');
  });

  it('names a main thread blocked in a synchronous write to a pipe nobody reads', async () => {
    // What a vitest main process would show if the reader of its stdout stopped reading:
    // Node writes to a stdout pipe synchronously, so the whole event loop stops there.
    const child = node(
      `require('node:fs').writeSync(1, Buffer.alloc(1 << 20)); setInterval(() => {}, 1000);`,
    );
    child.stdout?.pause();
    const seen = await until(child.pid ?? 0, (p) => p.threads[0]?.call === 'write');
    const line = summariseThreads(seen as ProcessThreads);
    // (Node's stdio 'pipe' is a socket pair; a shell pipe would read pipe:[n].)
    expect(line).toMatch(/^main thread in write (pipe|socket):\[\d+\]; /);
    expect(line).not.toContain('blocked in');
  });

  it('lists every process of a process group, also those its members started', async () => {
    const leader = node(
      `const c = require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
       console.log(c.pid); setInterval(() => {}, 1000);`,
      { detached: true },
    );
    const grandchild = await new Promise<number>((r) =>
      leader.stdout?.once('data', (d: Buffer) => r(Number(d.toString().trim()))),
    );
    try {
      const members = processGroupMembers(leader.pid ?? 0);
      expect(members).toEqual([leader.pid, grandchild].sort((a, b) => (a ?? 0) - (b ?? 0)));
      expect(readFileSync(`/proc/${grandchild}/cmdline`, 'utf8')).toContain('setInterval');
    } finally {
      process.kill(-(leader.pid ?? 0), 'SIGKILL');
    }
  });

  it('answers nothing for a process that does not exist', () => {
    expect(inspectProcess(2 ** 22 + 12345)).toBeUndefined();
  });
});

describe('unchangedSince', () => {
  const look = (threads: ThreadState[]): ProcessThreads => ({
    pid: 10,
    command: 'node x',
    poolSize: 4,
    threads,
  });
  const t = (tid: number, call: string, target?: string): ThreadState => ({
    tid,
    state: 'S',
    call,
    waiting: call === 'futex' || call === 'epoll_pwait',
    ...(target === undefined ? {} : { target }),
  });

  it('keeps a thread "blocked" only when it is in the same call on the same target both times', () => {
    const earlier = look([
      t(10, 'epoll_pwait'),
      t(11, 'openat', '/f (FIFO)'),
      t(12, 'read', '/a'),
      t(13, 'futex'),
    ]);
    const later = look([
      t(10, 'epoll_pwait'),
      t(11, 'openat', '/f (FIFO)'),
      t(12, 'read', '/b'),
      t(13, 'futex'),
      t(14, 'write', 'pipe:[1]'),
    ]);
    const line = summariseThreads(unchangedSince(earlier, later));
    expect(line).toBe(
      'main thread in epoll_pwait; 1 thread blocked in openat /f (FIFO); 2 threads busy; 1 waiting',
    );
  });
});
