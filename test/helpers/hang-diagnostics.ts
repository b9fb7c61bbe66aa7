/**
 * Worker-side half of the test watchdog (see progress-reporter.ts for the glossary).
 *
 * A vitest setup file: it runs in every fork worker before the test file is imported,
 * so a worker that then hangs while importing its file (the "queued, no test started"
 * hang of issue 18) still answers the watchdog's SIGUSR2 with the file it holds and the
 * handles that keep it alive. Only in vitest.config.ts's setupFiles when the watchdog
 * runs the suite.
 */
import { PROGRESS_DIR_ENV, registerDiagnostics } from './progress-reporter.js';

interface WorkerState {
  filepath?: string;
}

const dir = process.env[PROGRESS_DIR_ENV];
if (dir) {
  registerDiagnostics(dir, 'worker', () => {
    // vitest's own record of the file this worker runs (set before setup files run).
    const state = (globalThis as { __vitest_worker__?: WorkerState }).__vitest_worker__;
    return state?.filepath ? [state.filepath] : [];
  });
}
