/**
 * scripts/test-watchdog.ts, run for real as CI runs it (`node --import tsx`): on a real
 * vitest whose fork worker hangs while importing its file (the hang of issue 18), and on
 * tiny fake commands for the exit code and the overall limit.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PROGRESS_DIR_ENV, PROGRESS_FILE } from '../../helpers/progress-reporter.js';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');
const WATCHDOG = join(ROOT, 'scripts', 'test-watchdog.ts');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'hang');
const VITEST = join(ROOT, 'node_modules', 'vitest', 'vitest.mjs');

interface Outcome {
  code: number | null;
  out: string;
  ms: number;
}

/** This process's own vitest variables would make the nested vitest think it is a worker. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('VITEST') && k !== PROGRESS_DIR_ENV) env[k] = v;
  }
  return { ...env, ...extra };
}

function watchdog(args: string[], cwd = ROOT, env = cleanEnv()): Promise<Outcome> {
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', WATCHDOG, ...args], { cwd, env });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
  return new Promise((r) =>
    child.once('close', (code) => r({ code, out, ms: Date.now() - started })),
  );
}

/** Whether `pid` has ended, within a few seconds (a killed orphan is reaped by init, not at once). */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    try {
      process.kill(pid, 0);
      // A zombie has ended; it only waits for its parent to read its status.
      if (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z')) return true;
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

const tmp = mkdtempSync(join(tmpdir(), 'latchkey-watchdog-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('test watchdog', () => {
  it('stops a vitest run whose worker hangs importing its file, naming the file and what keeps it alive', async () => {
    const fifo = join(tmp, 'never-written');
    execFileSync('mkfifo', [fifo]);
    const r = await watchdog(
      [
        '--idle-seconds',
        '10',
        '--',
        process.execPath,
        VITEST,
        'run',
        '--config',
        'vitest.config.ts',
      ],
      FIXTURE,
      cleanEnv({ LATCHKEY_FIXTURE_FIFO: fifo }),
    );
    expect(r.code, r.out).toBe(124);
    expect(r.out).toContain('test-watchdog: no progress for 10 s');
    expect(r.out).toMatch(/running \(started, not finished\): stuck-import\.fixture\.ts/);
    // The worker answered: it holds the stuck file, kept alive by its IPC pipe and the
    // file-system request that never completes.
    const worker =
      /worker pid (\d+) holding stuck-import\.fixture\.ts; alive because of: (.*)/.exec(r.out);
    expect(worker, r.out).not.toBeNull();
    expect(worker?.[2]).toContain('PipeWrap');
    expect(worker?.[2]).toContain('FSReqPromise');
    expect(r.out).toMatch(/main pid \d+ holding stuck-import\.fixture\.ts/);
    // Read from /proc by the watchdog: what that request waits for, by name.
    expect(r.out).toMatch(
      new RegExp(
        `threads of pid ${worker?.[1]} \\(worker\\): main thread in epoll_p?wait; 1 thread blocked in openat ${fifo} \\(FIFO\\)`,
      ),
    );
    // Nothing of the run is left behind.
    expect(await gone(Number(worker?.[1]))).toBe(true);
  }, 90_000);

  it('stops a vitest run whose main process no longer completes file-system requests (the state of issue 18)', async () => {
    // The main process's thread pool blocks once the file is queued: the worker waits
    // forever for its module, the main process for its pending fs requests.
    const fifo = join(tmp, 'main-never-written');
    execFileSync('mkfifo', [fifo]);
    const r = await watchdog(
      [
        '--idle-seconds',
        '10',
        '--',
        process.execPath,
        VITEST,
        'run',
        '--config',
        'vitest.config.ts',
      ],
      FIXTURE,
      cleanEnv({ LATCHKEY_FIXTURE_MAIN_FIFO: fifo, LATCHKEY_FIXTURE_ONLY: 'passes.fixture.ts' }),
    );
    expect(r.code, r.out).toBe(124);
    expect(r.out).toMatch(/running \(started, not finished\): passes\.fixture\.ts/);
    expect(r.out).toContain('(0 tests passed, 0 failed)');
    expect(r.out).toMatch(/^0 passed, 0 failed \(the test run was stopped by the watchdog\)$/m);
    const main = /main pid \d+ holding passes\.fixture\.ts; alive because of: (.*)/.exec(r.out);
    expect(main?.[1], r.out).toContain('FSReqPromise');
    // Read from /proc by the watchdog: the main process's four pool threads, each in an
    // open of the FIFO, named as the exhausted pool they are.
    expect(r.out).toMatch(
      new RegExp(
        `threads of pid \\d+ \\(main\\): main thread in epoll_p?wait; 4 threads blocked in openat ${fifo} \\(FIFO\\);.*as many blocked threads as the libuv pool has \\(4\\)`,
      ),
    );
    // The worker, preloaded with its diagnostics, answers although it never got its file.
    const worker = /worker pid (\d+) holding .*; alive because of: (.*)/.exec(r.out);
    expect(worker?.[2], r.out).toContain('PipeWrap');
    expect(worker?.[2]).not.toContain('Timeout');
    expect(await gone(Number(worker?.[1]))).toBe(true);
  }, 90_000);

  it("exits with the command's own code when it finishes", async () => {
    const r = await watchdog(['--', process.execPath, '-e', 'process.exit(3)']);
    expect(r.code).toBe(3);
    expect(r.out).not.toContain('test-watchdog:');
  });

  it('stops a command that keeps making progress past the overall limit, and its children', async () => {
    // Reports progress every 100 ms forever, and starts a child that would outlive it.
    const script = `
      const { appendFileSync } = require('node:fs');
      const { spawn } = require('node:child_process');
      const c = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      console.log('child ' + c.pid);
      setInterval(() => appendFileSync(process.env.${PROGRESS_DIR_ENV} + '/${PROGRESS_FILE}', '{"type":"x"}\\n'), 100);
    `;
    const r = await watchdog([
      '--idle-seconds',
      '1',
      '--total-seconds',
      '2',
      '--',
      process.execPath,
      '-e',
      script,
    ]);
    expect(r.code, r.out).toBe(124);
    expect(r.out).toContain('the run exceeded its overall limit of 2 s');
    expect(r.ms).toBeLessThan(15_000);
    const child = Number(/child (\d+)/.exec(r.out)?.[1]);
    expect(child).toBeGreaterThan(0);
    expect(await gone(child)).toBe(true);
  }, 30_000);

  it('stops a command that makes no progress at all after the idle limit', async () => {
    const r = await watchdog([
      '--idle-seconds',
      '1',
      '--',
      process.execPath,
      '-e',
      'setInterval(() => {}, 1000)',
    ]);
    expect(r.code).toBe(124);
    expect(r.out).toContain('no progress for 1 s');
    expect(r.out).toContain('no test process answered for diagnostics');
    // Not a test process, nothing blocked: summed up in one line, not one per process.
    expect(r.out).toContain(
      'test-watchdog: other processes of the run, every thread waiting: node',
    );
    expect(r.out).not.toContain('threads of pid');
  }, 30_000);
});
