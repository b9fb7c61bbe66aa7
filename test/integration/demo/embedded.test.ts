/**
 * `npm run demo` on a machine with only Node.js (issue 16): when no PostgreSQL answers at
 * the configured URL the demo runs the PostgreSQL scene on an embedded server that checks
 * passwords, leaves out the MariaDB scene with one line saying how to get it, and removes
 * the server at the end, also on Ctrl-C. Run as a child process, exactly as a newcomer
 * runs it, with its own TMPDIR so that what it leaves behind can be seen.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');
const CLOSED_PG = 'postgres://postgres@127.0.0.1:1/postgres';
const CLOSED_MYSQL = 'mysql://root@127.0.0.1:2';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function freshTmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'latchkey-demo-test-'));
  // Run as root, the embedded server runs as the postgres user: it must reach its directory.
  chmodSync(d, 0o755);
  dirs.push(d);
  return d;
}

interface DemoRun {
  output: () => string;
  waitFor: (text: string, ms: number) => Promise<void>;
  /** To the demo's whole process group, like Ctrl-C in a terminal. */
  kill: (signal: NodeJS.Signals) => void;
  exit: Promise<number | null>;
}

function startDemo(tmp: string): DemoRun {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TMPDIR: tmp,
    LATCHKEY_TEST_PG_URL: CLOSED_PG,
    LATCHKEY_DEMO_MYSQL_URL: CLOSED_MYSQL,
  };
  delete env.LATCHKEY_DEMO_PG_URL;
  // Its own process group, so that a "Ctrl-C" reaches the demo and everything it started
  // (initdb, postgres), as a terminal's does.
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'demo'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exit = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  return {
    output: () => out,
    kill: (s) => {
      if (child.pid !== undefined) process.kill(-child.pid, s);
    },
    exit,
    async waitFor(text, ms) {
      const until = Date.now() + ms;
      while (!out.includes(text)) {
        if (Date.now() > until) throw new Error(`demo never printed "${text}":\n${out}`);
        if (child.exitCode !== null) throw new Error(`demo exited before "${text}":\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

const leftovers = (tmp: string): string[] =>
  readdirSync(tmp).filter((n) => n.startsWith('latchkey-pg-'));

describe('the demo on a machine without PostgreSQL or MariaDB', () => {
  it('runs the PostgreSQL scene on an embedded server that checks passwords, and removes it', async () => {
    const tmp = freshTmp();
    const demo = startDemo(tmp);
    const code = await demo.exit;
    const out = demo.output();
    expect(code, out).toBe(0);
    expect(out).toContain('PostgreSQL scene on: embedded PostgreSQL 15.');
    expect(out).toMatch(/with a wrong password → refused: SQLSTATE 28P01/);
    expect(out).toContain('=== postgres: passed ===');
    expect(out).toMatch(
      /=== Scene: mysql: NOT RUN: no MariaDB\/MySQL answers at mysql:\/\/root@127\.0\.0\.1:2/,
    );
    expect(out).toContain('Demo finished: every step behaved as expected.');
    expect(out).toContain('the embedded PostgreSQL was stopped and its directory removed');
    expect(leftovers(tmp)).toEqual([]);
  }, 180_000);

  it('Ctrl-C while the embedded server starts: exit 130, nothing left behind', async () => {
    const tmp = freshTmp();
    const demo = startDemo(tmp);
    await demo.waitFor('Find the databases', 60_000);
    // Interrupt while initdb is writing the data directory (the hardest moment: removing
    // the directory under it would only have it written again).
    const until = Date.now() + 60_000;
    const initdbRunning = (): boolean => {
      const [dir] = leftovers(tmp);
      try {
        return dir !== undefined && readdirSync(join(tmp, dir, 'data')).length > 0;
      } catch {
        return false;
      }
    };
    while (!initdbRunning() && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(initdbRunning()).toBe(true);
    demo.kill('SIGINT');
    const code = await demo.exit;
    expect(code, demo.output()).toBe(130);
    expect(demo.output()).toContain('SIGINT: stopping the agent and any embedded PostgreSQL');
    // Nothing is still writing there once the demo has exited.
    await new Promise((r) => setTimeout(r, 2_000));
    expect(leftovers(tmp)).toEqual([]);
  }, 120_000);
});
