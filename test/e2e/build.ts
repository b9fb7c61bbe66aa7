/**
 * Shared by the end-to-end tests: where the built CLI is, and a fresh `dist/` before they
 * start it as a child process.
 *
 * `ensureBuilt` compiles (tsc -p tsconfig.build.json) unless `dist/src/main.js` is newer
 * than every source. E2E files run in parallel, so the build is serialised by a lock
 * directory: one file builds, the others wait for it and then find `dist/` fresh.
 */
import { createHash } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const MAIN = join(ROOT, 'dist', 'src', 'main.js');

const BUILD_TIMEOUT_MS = 180_000;
const LOCK = join(
  tmpdir(),
  `latchkey-e2e-build-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}.lock`,
);

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function isFresh(): boolean {
  return existsSync(MAIN) && statSync(MAIN).mtimeMs >= newestMtime(join(ROOT, 'src'));
}

function tryLock(): boolean {
  try {
    mkdirSync(LOCK);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // A lock left by a killed run: older than any build could take.
    try {
      if (Date.now() - statSync(LOCK).mtimeMs > BUILD_TIMEOUT_MS + 10_000) {
        rmSync(LOCK, { recursive: true, force: true });
      }
    } catch {
      // removed meanwhile by its owner
    }
    return false;
  }
}

function compile(): Promise<void> {
  return new Promise((resolvePromise) => {
    // tsc emits even when some file has a type error; what matters here is the JavaScript.
    const child = spawn(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
      { cwd: ROOT, stdio: 'ignore' },
    );
    const timer = setTimeout(() => child.kill('SIGKILL'), BUILD_TIMEOUT_MS);
    child.once('close', () => {
      clearTimeout(timer);
      resolvePromise();
    });
  });
}

/** Builds `dist/` unless it is already newer than every source under `src/`. */
export async function ensureBuilt(): Promise<void> {
  const deadline = Date.now() + BUILD_TIMEOUT_MS + 20_000;
  for (;;) {
    if (isFresh()) return;
    if (tryLock()) {
      try {
        if (!isFresh()) await compile();
      } finally {
        rmSync(LOCK, { recursive: true, force: true });
      }
      if (!existsSync(MAIN)) throw new Error('build did not produce dist/src/main.js');
      return;
    }
    // Another test file is building: wait for its lock to go away.
    if (Date.now() > deadline) throw new Error('timed out waiting for another build of dist/');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * A minimal environment: no LATCHKEY_* leaking in from the developer's shell. State is off
 * unless a test names a directory: the default (`~/.local/state/latchkey`) would be
 * shared by every test and every run.
 */
export function baseEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? tmpdir(),
    LATCHKEY_STATE_DIR: 'off',
    ...extra,
  };
}

/** The exit code of a child process (null when it was killed by a signal). */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}
