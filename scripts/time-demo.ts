/**
 * How long `npm run demo` takes on this machine, for the README (issue 16): from the
 * command to its first line, to its first database step, and to the end. Run after
 * `npm ci`: `npx tsx scripts/time-demo.ts` (the system PostgreSQL) or
 * `LATCHKEY_TEST_PG_URL=postgres://postgres@127.0.0.1:1/postgres npx tsx scripts/time-demo.ts`
 * (the embedded one).
 */
import { spawn } from 'node:child_process';

const started = process.hrtime.bigint();
const ms = (): number => Number((process.hrtime.bigint() - started) / 1_000_000n);
const marks: [string, RegExp][] = [
  ['first line', /Latchkey demo/],
  ['databases found', /PostgreSQL scene on:/],
  ['PostgreSQL scene passed', /=== postgres: passed ===/],
  ['end', /Demo (finished|FAILED)/],
];
const seen = new Map<string, number>();
let out = '';
const child = spawn('npm', ['run', '--silent', 'demo'], { stdio: ['ignore', 'pipe', 'inherit'] });
child.stdout.on('data', (b: Buffer) => {
  out += b.toString();
  for (const [name, re] of marks) if (!seen.has(name) && re.test(out)) seen.set(name, ms());
});
child.on('close', (code) => {
  const db = /PostgreSQL scene on: (.*)/.exec(out)?.[1] ?? '?';
  console.log(`npm run demo: exit ${String(code)}; PostgreSQL: ${db.slice(0, 60)}`);
  for (const [name] of marks)
    console.log(`  ${name.padEnd(24)} ${String(seen.get(name) ?? '-')} ms`);
  console.log(`  total                    ${ms()} ms`);
  process.exitCode = code ?? 1;
});
