/**
 * `npm run bench` must keep working: each database benchmark runs here at a tiny size
 * against the real test databases. Only that it completes and reports is asserted;
 * figures are for `npm run bench`, never for tests.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function runBench(
  file: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', `bench/${file}`, ...args], {
      cwd: ROOT,
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('benchmarks still run', () => {
  it('postgres: grant+revoke through the dispatcher and direct, and discover', async () => {
    const { code, out } = await runBench('postgres.bench.ts', ['4', '2', '50', '2']);
    expect(out).toMatch(/ratio \d/);
    expect(out).toMatch(
      /each round's Dispatcher\/direct ratio, lowest to highest: \d+\.\d+, \d+\.\d+\n/,
    );
    expect(out).toMatch(/one grant .*: [1-9]\d* round trips, [1-9]\d* statements/);
    expect(out).toMatch(/its revoke: [1-9]\d* round trips/);
    expect(out).toMatch(/discover 50 tables/);
    expect(code).toBe(0);
  }, 120_000);

  it('inventory: tables × principals, chunked, and a large discover', async () => {
    const { code, out } = await runBench('inventory.bench.ts', ['60', '3', '30', '8192']);
    expect(out).toMatch(/60 tables × 3 principals: \d+ entries, .* in \d+ frames \(≤ 8192 bytes/);
    expect(out).toMatch(/discover 30 tables × 3 schemas/);
    expect(code).toBe(0);
  }, 120_000);

  it('mysql: grant+revoke through the dispatcher, the driver and direct', async () => {
    const { code, out } = await runBench('mysql.bench.ts', ['4', '2', '1']);
    expect(out).toMatch(/ratio Dispatcher \/ direct: \d/);
    expect(out).toMatch(/each round's ratio Dispatcher \/ direct, lowest to highest: \d+\.\d+\n/);
    expect(out).toMatch(/one grant .*: [1-9]\d* round trips, [1-9]\d* statements/);
    expect(out).toMatch(/its revoke: [1-9]\d* round trips/);
    expect(code).toBe(0);
  }, 120_000);

  it('fairness: 500 grantees on 50 integrations, revokes while grants saturate', async () => {
    const { code, out } = await runBench('fairness.bench.ts', [], {
      BENCH_FAIR_PAIRS: '1',
      BENCH_FAIR_SECONDS: '1',
    });
    expect(out).toMatch(/throughput, 500 × 1 grant\+revoke pairs\s+\d+ commands\/s/);
    expect(out).toMatch(/: [1-9]\d* revokes, queueing .* p99 \d/);
    expect(code).toBe(0);
  }, 120_000);

  it('organization: aws-ssm discover over a mocked organization', async () => {
    const { code, out } = await runBench('organization.bench.ts', ['20', '2', '1']);
    expect(out).toMatch(/AWS calls\s+: \d+ \(per member account min 5, max 5; expected 5\)/);
    expect(out).toMatch(/peak RSS/);
    expect(code).toBe(0);
  }, 120_000);
});
