/**
 * The built agent (`node dist/src/main.js`) as a child process: the CLI commands, and
 * `latchkey run` against the reference control plane, stopped with SIGTERM.
 *
 * Builds `dist/` once (`ensureBuilt` in build.ts) unless it is newer than every source.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevControlPlane, type DevControlPlane } from '../../src/devcp/server.js';
import {
  generateSigningKeyPair,
  parsePrivateKey,
  parsePublicKey,
  signEnvelope,
  type SigningKeyPair,
} from '../../src/protocol/index.js';
import { baseEnv, ensureBuilt, exited, MAIN, ROOT } from './build.js';

function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = baseEnv(),
): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Like runCli, without blocking this process (the in-process control plane must answer). */
function runCliAsync(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    child.once('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

let tmp: string;

beforeAll(async () => {
  await ensureBuilt();
  tmp = mkdtempSync(join(tmpdir(), 'latchkey-e2e-'));
}, 200_000);

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('latchkey CLI (built)', () => {
  it('version prints the package version', () => {
    const r = runCli(['version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^latchkey 0\.1\.0 \(protocol v1, node /);
  });

  it('--help lists every command; each command has --help; an unknown command exits 2', () => {
    const r = runCli(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['run', 'check', 'keygen', 'exec', 'version', 'dev-control-plane', 'demo']) {
      expect(r.stdout).toContain(c);
      const h = runCli([c, '--help']);
      expect(h.code).toBe(0);
      expect(h.stdout).toContain('Usage: latchkey');
    }
    const bad = runCli(['frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown command');
    const badFlag = runCli(['keygen', '--nope']);
    expect(badFlag.code).toBe(2);
  });

  it('keygen prints a usable Ed25519 pair and X25519 pair', () => {
    const r = runCli(['keygen', '--json']);
    expect(r.code).toBe(0);
    const keys = JSON.parse(r.stdout) as {
      signing: { keyId: string; publicKey: string; privateKeyPem: string };
      recipient: { publicKey: string; privateKeyPem: string };
    };
    expect(parsePublicKey(keys.signing.publicKey).asymmetricKeyType).toBe('ed25519');
    expect(parsePrivateKey(keys.signing.privateKeyPem).asymmetricKeyType).toBe('ed25519');
    expect(keys.signing.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(keys.recipient.publicKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(keys.recipient.privateKeyPem).toContain('BEGIN PRIVATE KEY');

    const env = runCli(['keygen']);
    expect(env.code).toBe(0);
    expect(env.stdout).toMatch(/^LATCHKEY_TRUSTED_KEYS='\{"[0-9a-f]{16}":"[A-Za-z0-9_-]{43}"\}'$/m);
    expect(env.stdout).toMatch(/^LATCHKEY_RECIPIENT_PUBLIC_KEY=/m);
  });

  it('run with an invalid configuration lists every problem at once and exits 2', () => {
    const r = runCli(
      ['run'],
      baseEnv({
        LATCHKEY_CONTROL_PLANE_URL: 'http://not-a-websocket.example',
        LATCHKEY_QUEUE_SIZE: 'lots',
        LATCHKEY_CONNECTOR_TOKEN: 'secret-token-value',
      }),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid configuration');
    const problems = r.stderr.split('\n').filter((l) => l.startsWith('  - '));
    expect(problems.length).toBeGreaterThanOrEqual(4);
    for (const name of [
      'LATCHKEY_CONTROL_PLANE_URL',
      'LATCHKEY_CONNECTOR_ID',
      'LATCHKEY_TRUSTED_KEYS',
      'LATCHKEY_QUEUE_SIZE',
    ]) {
      expect(r.stderr).toContain(name);
    }
    expect(r.stderr + r.stdout).not.toContain('secret-token-value');
  });

  it('exec runs one command locally: an unserved type is a result with E_UNSUPPORTED', () => {
    const integration = join(tmp, 'integration.json');
    const command = join(tmp, 'command.json');
    writeFileSync(integration, JSON.stringify({ id: 'local-1', type: 'mainframe', config: {} }));
    writeFileSync(command, JSON.stringify({ kind: 'check', params: {} }));
    const r = runCli(['exec', '--integration', integration, '--command', command]);
    expect(r.code).toBe(1);
    const result = JSON.parse(r.stdout) as {
      type: string;
      status: string;
      error: { code: string };
    };
    expect(result).toMatchObject({
      type: 'result',
      status: 'error',
      error: { code: 'E_UNSUPPORTED' },
    });

    writeFileSync(command, JSON.stringify({ kind: 'explode' }));
    expect(runCli(['exec', '--integration', integration, '--command', command]).code).toBe(2);
  });
});

describe('latchkey run against the reference control plane', () => {
  let cp: DevControlPlane;
  let signing: SigningKeyPair;
  const connectorId = `e2e-${randomUUID().slice(0, 8)}`;
  const token = `tok-${randomUUID()}`;

  beforeAll(async () => {
    signing = generateSigningKeyPair();
    cp = await startDevControlPlane({
      agents: [{ connectorId, token }],
      signingKey: { keyId: signing.keyId, privateKeyPem: signing.privateKeyPem },
      logger: pino({ level: 'silent' }),
    });
  });

  afterAll(async () => {
    await cp.close();
  });

  const agentEnv = (overrides: Record<string, string> = {}): NodeJS.ProcessEnv =>
    baseEnv({
      LATCHKEY_CONTROL_PLANE_URL: cp.url,
      LATCHKEY_CONNECTOR_ID: connectorId,
      LATCHKEY_CONNECTOR_TOKEN: token,
      LATCHKEY_TRUSTED_KEYS: JSON.stringify({ [signing.keyId]: signing.publicKey }),
      LATCHKEY_HTTP_HOST: '127.0.0.1',
      LATCHKEY_HTTP_PORT: '0',
      LATCHKEY_LOG_LEVEL: 'info',
      ...overrides,
    });

  it('check: reaches the control plane (exit 0); with a wrong token it says so (exit 1)', async () => {
    const ok = await runCliAsync(['check', '--timeout', '10s'], agentEnv());
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/\[ ok \] control plane ws:\/\/127\.0\.0\.1:\d+\//);
    expect(ok.stdout).toContain('All checks passed.');

    // A refused token ends the check at once (HTTP 401 at the upgrade), well before its
    // timeout; before, the check retried until the timeout and could then report the
    // retry it had stopped ("closed before the connection was established").
    const startedAt = Date.now();
    const bad = await runCliAsync(
      ['check', '--timeout', '20s'],
      agentEnv({ LATCHKEY_CONNECTOR_TOKEN: 'wrong-token' }),
    );
    expect(Date.now() - startedAt).toBeLessThan(15_000);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/\[FAIL\] control plane/);
    expect(bad.stdout).toContain('refused the connector token');
    expect(bad.stdout).not.toContain('wrong-token');
  });

  it('connects, refuses a bad signature and an unserved type, stops on SIGTERM with exit 0', async () => {
    const since = cp.received.length;
    const child = spawn(process.execPath, [MAIN, 'run'], {
      cwd: ROOT,
      env: agentEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let logs = '';
    child.stdout?.on('data', (b: Buffer) => (logs += b.toString('utf8')));
    child.stderr?.on('data', (b: Buffer) => (logs += b.toString('utf8')));
    try {
      const hello = await cp.waitFor('hello', (m) => m.connectorId === connectorId, 30_000, since);
      expect(hello.version).toBe('0.1.0');

      // bad signature: signed, then changed
      const now = Date.now();
      const envelope: Record<string, unknown> = {
        id: `cmd-${randomUUID()}`,
        kind: 'check',
        connectorId,
        issuedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + 60_000).toISOString(),
        integration: { id: 'db-1', type: 'postgres', config: { host: 'db.internal' } },
        params: {},
      };
      const signature = signEnvelope(
        envelope,
        parsePrivateKey(signing.privateKeyPem),
        signing.keyId,
      );
      const tampered = {
        ...envelope,
        integration: { id: 'db-1', type: 'postgres', config: { host: 'evil.example' } },
      };
      cp.sendRaw(connectorId, JSON.stringify({ type: 'command', envelope: tampered, signature }));
      const r1 = await cp.waitFor('rejected', (m) => m.commandId === envelope.id, 10_000);
      expect(r1.error.code).toBe('E_SIGNATURE');

      // a type this agent does not serve
      const { commandId } = await cp.sendCommand(connectorId, {
        kind: 'check',
        integration: { id: 'mf-1', type: 'mainframe', config: {} },
        params: {},
      });
      const r2 = await cp.waitFor('rejected', (m) => m.commandId === commandId, 10_000);
      expect(r2.error.code).toBe('E_UNSUPPORTED');

      child.kill('SIGTERM');
      expect(await exited(child)).toBe(0);
      expect(logs).toContain('"msg":"shutdown complete"');
      // V8 heap tuning applied at start (LATCHKEY_HEAP_GROWING_PERCENT, default 50).
      expect(logs).toMatch(
        /"heapGrowingPercent":50,"heapLimitMiB":\d+,"msg":"JavaScript heap settings"/,
      );
      expect(logs).not.toContain(token);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
