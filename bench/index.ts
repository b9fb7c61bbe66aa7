/**
 * `npm run bench`: runs every `bench/*.bench.ts`, one after another, each in its own
 * process (through tsx) so that one benchmark's memory and timers cannot skew another's.
 * Each prints its own report. Exits non-zero if any benchmark failed.
 *
 * `npm run bench -- core` runs only the benchmarks whose file name contains `core`.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const filters = process.argv.slice(2);

const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();

function runOne(file: string): Promise<number> {
  return new Promise((resolveCode) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, file)], {
      cwd: root,
      stdio: 'inherit',
      env: process.env,
    });
    child.once('exit', (code, signal) => resolveCode(code ?? (signal ? 1 : 0)));
  });
}

let failed = 0;
console.log(`Latchkey benchmarks (${files.length}): ${files.join(', ')}`);
console.log(`node ${process.versions.node}, ${process.platform}/${process.arch}\n`);
for (const file of files) {
  console.log(`──── ${file} ────`);
  const started = Date.now();
  const code = await runOne(file);
  console.log(
    `──── ${file}: ${code === 0 ? 'done' : `FAILED (exit ${code})`} in ${((Date.now() - started) / 1000).toFixed(1)} s ────\n`,
  );
  if (code !== 0) failed += 1;
}
process.exitCode = failed === 0 ? 0 : 1;
