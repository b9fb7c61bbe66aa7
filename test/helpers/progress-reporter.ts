/**
 * What the test watchdog (scripts/test-watchdog.ts) reads to tell progress from a hang.
 *
 * Glossary:
 * - progress directory: `LATCHKEY_TEST_PROGRESS_DIR`, created by the watchdog for one run.
 *   Only when it is set does vitest.config.ts add this reporter and the worker-side
 *   `hang-diagnostics.mjs`; a plain `npx vitest run` is unchanged.
 * - progress log: `progress.jsonl` in that directory, one JSON event a line, appended
 *   synchronously by the main vitest process (`run-start` with every file, `queued`,
 *   `start`, `test` for each finished test, `end` for each finished file, `run-end`).
 *   Its growth is the progress the watchdog measures.
 * - diagnostics: on SIGUSR2 every registered process (the main process here, each fork
 *   worker in hang-diagnostics.mjs) writes `diag-<pid>.json`: which file it holds and the
 *   libuv resources that keep it alive (`process.getActiveResourcesInfo()`).
 *
 * Everything is written with synchronous fs calls: a stuck run may be stuck precisely
 * because the libuv thread pool is blocked, and a diagnostic that waits for that pool
 * would never arrive.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Reporter, TestCase, TestModule, TestSpecification } from 'vitest/node';

export const PROGRESS_DIR_ENV = 'LATCHKEY_TEST_PROGRESS_DIR';
export const PROGRESS_FILE = 'progress.jsonl';
/** Where processes announce themselves (`<pid>` files) so that the watchdog can signal them. */
export const PIDS_DIR = 'pids';
export const DIAG_SIGNAL = 'SIGUSR2';

export type ProgressEvent =
  | { type: 'run-start'; at: number; files: string[] }
  | { type: 'queued' | 'start' | 'end'; at: number; file: string; state?: string }
  | { type: 'test'; at: number; file: string; name: string; state: string }
  | { type: 'run-end'; at: number; reason: string };

export interface Diagnostics {
  pid: number;
  role: 'main' | 'worker';
  /** The test file(s) this process holds. */
  files: string[];
  /** `process.getActiveResourcesInfo()`: what keeps the event loop alive. */
  resources: string[];
  at: number;
}

/** Registers this process for SIGUSR2 diagnostics in `dir` (no-op when already done). */
export function registerDiagnostics(
  dir: string,
  role: Diagnostics['role'],
  files: () => string[],
): void {
  const key = Symbol.for('latchkey.test.diagnostics');
  const g = globalThis as Record<symbol, unknown>;
  if (g[key]) return;
  g[key] = true;
  mkdirSync(join(dir, PIDS_DIR), { recursive: true });
  writeFileSync(join(dir, PIDS_DIR, String(process.pid)), role);
  process.on(DIAG_SIGNAL, () => {
    const diag: Diagnostics = {
      pid: process.pid,
      role,
      files: files(),
      resources: process.getActiveResourcesInfo(),
      at: Date.now(),
    };
    try {
      writeFileSync(join(dir, `diag-${process.pid}.json`), JSON.stringify(diag));
    } catch {
      // the run is being stopped anyway
    }
  });
}

/** A vitest reporter that appends every step of the run to the progress log. */
export class ProgressReporter implements Reporter {
  private readonly file: string;
  private readonly running = new Set<string>();

  constructor(
    private readonly dir: string,
    private readonly root: string = process.cwd(),
  ) {
    mkdirSync(dir, { recursive: true });
    this.file = join(dir, PROGRESS_FILE);
    registerDiagnostics(dir, 'main', () => [...this.running]);
  }

  private rel(path: string): string {
    return relative(this.root, path);
  }

  private write(event: ProgressEvent): void {
    appendFileSync(this.file, `${JSON.stringify(event)}\n`);
  }

  onTestRunStart(specifications: ReadonlyArray<TestSpecification>): void {
    const files = [...new Set(specifications.map((s) => this.rel(s.moduleId)))];
    this.write({ type: 'run-start', at: Date.now(), files });
  }

  onTestModuleQueued(testModule: TestModule): void {
    const file = this.rel(testModule.moduleId);
    this.running.add(file);
    this.write({ type: 'queued', at: Date.now(), file });
  }

  onTestModuleStart(testModule: TestModule): void {
    this.write({ type: 'start', at: Date.now(), file: this.rel(testModule.moduleId) });
  }

  onTestCaseResult(testCase: TestCase): void {
    this.write({
      type: 'test',
      at: Date.now(),
      file: this.rel(testCase.module.moduleId),
      name: testCase.fullName,
      state: testCase.result().state,
    });
  }

  onTestModuleEnd(testModule: TestModule): void {
    const file = this.rel(testModule.moduleId);
    this.running.delete(file);
    this.write({ type: 'end', at: Date.now(), file, state: testModule.state() });
  }

  onTestRunEnd(_modules: unknown, _errors: unknown, reason: string): void {
    this.write({ type: 'run-end', at: Date.now(), reason });
  }
}
