/**
 * Worker-side half of the test watchdog (see progress-reporter.ts for the glossary).
 *
 * Preloaded (`node --import`) into every fork worker when the watchdog runs the suite
 * (vitest.config.ts `execArgv`), so it is in place before vitest's worker code runs and
 * needs nothing from the main process: a worker that hangs while its file is imported
 * (the "queued, no test started" hang of issue 18), even one whose main process no longer
 * answers, still answers the watchdog's SIGUSR2 with the file it holds and the resources
 * that keep it alive. Plain JavaScript because Node loads it before any TypeScript
 * loader; keep the names in step with registerDiagnostics() in progress-reporter.ts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';

const dir = process.env.LATCHKEY_TEST_PROGRESS_DIR;
if (dir && process.send) {
  mkdirSync(join(dir, 'pids'), { recursive: true });
  writeFileSync(join(dir, 'pids', String(process.pid)), 'worker');
  process.on('SIGUSR2', () => {
    // vitest's own record of the file this worker runs.
    const file = globalThis.__vitest_worker__?.filepath;
    const diag = {
      pid: process.pid,
      role: 'worker',
      files: typeof file === 'string' ? [file] : [],
      resources: process.getActiveResourcesInfo(),
      at: Date.now(),
    };
    try {
      // Synchronous: the thread pool may be what is stuck.
      writeFileSync(join(dir, `diag-${process.pid}.json`), JSON.stringify(diag));
    } catch {
      // the run is being stopped anyway
    }
  });
}
