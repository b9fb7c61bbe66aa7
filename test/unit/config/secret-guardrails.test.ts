import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { buildDriverServices } from '../../../src/agent.js';
import { ConfigError, loadConfig } from '../../../src/config/load.js';
import { AgentEvents } from '../../../src/events.js';
import type { AgentConfig } from '../../../src/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'latchkey-guardrail-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const KEY = generateKeyPairSync('ed25519')
  .publicKey.export({ format: 'der', type: 'spki' })
  .subarray(12)
  .toString('base64url');

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    LATCHKEY_CONTROL_PLANE_URL: 'wss://cp.example.com/connect',
    LATCHKEY_CONNECTOR_ID: 'acme-prod',
    LATCHKEY_CONNECTOR_TOKEN: 'lk_tok_0123456789abcdef',
    LATCHKEY_TRUSTED_KEYS: `k1=${KEY}`,
    ...extra,
  };
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('secret guardrail settings', () => {
  it('defaults: file roots, LATCHKEY_SECRET_ env prefix, unbound secrets only from file and env', () => {
    const c = loadConfig({ env: env() });
    expect(c.secretFileRoots).toEqual([
      '/var/run/secrets/latchkey',
      '/run/secrets',
      '/var/run/latchkey/secrets',
    ]);
    expect(c.secretEnvPrefixes).toEqual(['LATCHKEY_SECRET_']);
    expect(c.allowUnboundSecrets).toEqual(['file', 'env']);
  });

  it('reads comma-separated lists from the environment', () => {
    const c = loadConfig({
      env: env({
        LATCHKEY_SECRET_FILE_ROOTS: '/mnt/secrets, /etc/latchkey/secrets',
        LATCHKEY_SECRET_ENV_PREFIXES: 'LATCHKEY_SECRET_,TEAM_DB_',
        LATCHKEY_ALLOW_UNBOUND_SECRETS: 'kubernetes,env',
      }),
    });
    expect(c.secretFileRoots).toEqual(['/mnt/secrets', '/etc/latchkey/secrets']);
    expect(c.secretEnvPrefixes).toEqual(['LATCHKEY_SECRET_', 'TEAM_DB_']);
    expect(c.allowUnboundSecrets).toEqual(['kubernetes', 'env']);
  });

  it('LATCHKEY_ALLOW_UNBOUND_SECRETS: all/true expand to every store, none/false to no store', () => {
    const stores = (v: string) =>
      loadConfig({ env: env({ LATCHKEY_ALLOW_UNBOUND_SECRETS: v }) }).allowUnboundSecrets;
    const every = ['aws-secrets-manager', 'kubernetes', 'file', 'env', 'vault'];
    expect(stores('all')).toEqual(every);
    expect(stores('true')).toEqual(every);
    expect(stores('none')).toEqual([]);
    expect(stores('false')).toEqual([]);
  });

  it('reads JSON arrays (or a comma-separated string) from the config file', () => {
    const file = join(dir, 'config.json');
    writeFileSync(
      file,
      JSON.stringify({
        secretFileRoots: ['/srv/secrets'],
        secretEnvPrefixes: 'LATCHKEY_SECRET_,LOCAL_',
        allowUnboundSecrets: [],
      }),
    );
    const c = loadConfig({ env: env(), configFile: file });
    expect(c.secretFileRoots).toEqual(['/srv/secrets']);
    expect(c.secretEnvPrefixes).toEqual(['LATCHKEY_SECRET_', 'LOCAL_']);
    expect(c.allowUnboundSecrets).toEqual([]);
  });

  it('refuses relative roots, malformed prefixes and unknown stores, naming the variable', () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: env({
          LATCHKEY_SECRET_FILE_ROOTS: '/ok,relative/dir',
          LATCHKEY_SECRET_ENV_PREFIXES: 'lower_',
          LATCHKEY_ALLOW_UNBOUND_SECRETS: 'env,hashicorp',
        }),
      }),
    );
    expect(problems.find((p) => p.startsWith('LATCHKEY_SECRET_FILE_ROOTS'))).toMatch(/item 2/);
    expect(problems.find((p) => p.startsWith('LATCHKEY_SECRET_ENV_PREFIXES'))).toBeDefined();
    expect(problems.find((p) => p.startsWith('LATCHKEY_ALLOW_UNBOUND_SECRETS'))).toMatch(
      /"hashicorp"/,
    );
  });
});

describe('buildDriverServices wires the guardrails into the secret resolver', () => {
  function servicesOf(config: AgentConfig) {
    return buildDriverServices(config, pino({ level: 'silent' }), new AgentEvents());
  }

  it('the binding policy comes from LATCHKEY_ALLOW_UNBOUND_SECRETS', () => {
    const built = servicesOf(
      loadConfig({ env: env({ LATCHKEY_ALLOW_UNBOUND_SECRETS: 'aws-secrets-manager' }) }),
    );
    expect(built.services.secrets.binding?.allowUnbound).toEqual(['aws-secrets-manager']);
    built.close();
    const defaults = servicesOf(loadConfig({ env: env() }));
    expect(defaults.services.secrets.binding?.allowUnbound).toEqual(['file', 'env']);
    defaults.close();
  });

  it('file refs outside LATCHKEY_SECRET_FILE_ROOTS are refused; inside are read', async () => {
    const root = join(dir, 'roots');
    const secretDir = join(root, 'db');
    const elsewhere = join(dir, 'elsewhere');
    for (const d of [secretDir, elsewhere]) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'username'), 'svc');
      writeFileSync(join(d, 'password'), 'pw');
    }
    const built = servicesOf(loadConfig({ env: env({ LATCHKEY_SECRET_FILE_ROOTS: root }) }));
    try {
      expect(
        (await built.services.secrets.resolve({ store: 'file', path: secretDir })).username,
      ).toBe('svc');
      await expect(
        built.services.secrets.resolve({ store: 'file', path: elsewhere }),
      ).rejects.toMatchObject({ code: 'E_GUARDRAIL' });
    } finally {
      built.close();
    }
  });

  it('env refs must start with LATCHKEY_SECRET_ENV_PREFIXES', async () => {
    const built = servicesOf(
      loadConfig({ env: env({ LATCHKEY_SECRET_ENV_PREFIXES: 'ONLY_THIS_' }) }),
    );
    try {
      await expect(
        built.services.secrets.resolve({ store: 'env', prefix: 'LATCHKEY_SECRET_PG_' }),
      ).rejects.toMatchObject({ code: 'E_GUARDRAIL' });
    } finally {
      built.close();
    }
  });
});
