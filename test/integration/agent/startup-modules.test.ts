/**
 * What the agent loads at start: the AWS SDK (STS, the credential chain, Secrets Manager,
 * the RDS signer, Redshift, the SDK's HTTP stack and @smithy/core under them) is loaded on
 * first use, not with the agent. It is tens of MiB of resident memory that an idle agent,
 * or one serving only database integrations, must not carry (issue 17: RSS idle < 80 MiB).
 *
 * A fresh process imports the agent module (and builds its services, as `createAgent`
 * does) and lists the CommonJS modules it holds: the SDK packages are CommonJS, so every
 * one of them that was loaded, by `import` or `require`, is in the module cache.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const SCRIPT = `
import { createRequire } from 'node:module';
import { pino } from 'pino';
const { buildDriverServices } = await import('./src/agent.ts');
const { loadConfig } = await import('./src/config/index.ts');
const { AgentEvents } = await import('./src/events.ts');
const { generateSigningKeyPair } = await import('./src/protocol/index.ts');
const { harnessEnv } = await import('./test/helpers/agent-harness.ts');
const env = harnessEnv({
  url: 'ws://127.0.0.1:9/',
  connectorId: 'c1',
  token: 't',
  signing: generateSigningKeyPair(),
});
const config = loadConfig({ env: { ...env, LATCHKEY_STATE_DIR: 'off' } });
const built = buildDriverServices(config, pino({ level: 'silent' }), new AgentEvents());
built.close();
const loaded = Object.keys(createRequire(import.meta.url).cache)
  .filter((f) => /node_modules\\/@(aws-sdk|smithy)\\//.test(f))
  .map((f) => f.replace(/.*node_modules\\//, '').split('/').slice(0, 2).join('/'));
console.log(JSON.stringify([...new Set(loaded)].sort()));
`;

function run(): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', SCRIPT],
      { cwd: ROOT, env: { ...process.env } },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

describe('agent start', () => {
  it('loads no AWS SDK module until an AWS call needs one', async () => {
    const { code, out, err } = await run();
    expect(err).toBe('');
    expect(code).toBe(0);
    const loaded = JSON.parse(out.trim().split('\n').pop() ?? 'null') as string[];
    expect(loaded).toEqual([]);
  }, 60_000);
});
