/** `LATCHKEY_VAULT_*` (issue 14, item 11): read, cross-checked, never printed. */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, describeConfig, loadConfig } from '../../../src/config/load.js';
import { vaultOptionsFromSettings } from '../../../src/secrets/vault.js';

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

function problemsOf(e: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig({ env: e });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('vault settings', () => {
  it('are off by default, and read VAULT_ADDR / VAULT_TOKEN / VAULT_NAMESPACE as fallbacks', () => {
    expect(vaultOptionsFromSettings(loadConfig({ env: env() }).vault, undefined)).toBeUndefined();
    const cfg = loadConfig({
      env: env({
        VAULT_ADDR: 'https://vault.example.com:8200',
        VAULT_TOKEN: 'hvs.secret-token',
        VAULT_NAMESPACE: 'team-a',
      }),
    });
    expect(cfg.vault).toMatchObject({
      address: 'https://vault.example.com:8200',
      namespace: 'team-a',
      authMethod: 'token',
      token: 'hvs.secret-token',
      kvMount: 'secret',
    });
    expect(JSON.stringify(describeConfig(cfg))).not.toContain('hvs.secret-token');
  });

  it('lists every problem: role for kubernetes/aws, exactly one of token and token file, https', () => {
    expect(
      problemsOf(
        env({ LATCHKEY_VAULT_ADDR: 'https://v:8200', LATCHKEY_VAULT_AUTH_METHOD: 'kubernetes' }),
      ).some((p) => p.startsWith('LATCHKEY_VAULT_ROLE')),
    ).toBe(true);
    expect(
      problemsOf(env({ LATCHKEY_VAULT_ADDR: 'https://v:8200' })).some((p) =>
        p.startsWith('LATCHKEY_VAULT_TOKEN or LATCHKEY_VAULT_TOKEN_FILE'),
      ),
    ).toBe(true);
    expect(
      problemsOf(
        env({ LATCHKEY_VAULT_ADDR: 'http://vault.example.com', LATCHKEY_VAULT_TOKEN: 'hvs.x' }),
      ).some((p) => p.startsWith('LATCHKEY_VAULT_ADDR') && p.includes('https://')),
    ).toBe(true);
    const ok = loadConfig({
      env: env({
        LATCHKEY_VAULT_ADDR: 'https://v:8200',
        LATCHKEY_VAULT_AUTH_METHOD: 'aws',
        LATCHKEY_VAULT_ROLE: 'latchkey',
      }),
    });
    expect(vaultOptionsFromSettings(ok.vault, undefined)).toMatchObject({
      address: 'https://v:8200',
      authMethod: 'aws',
      role: 'latchkey',
    });
  });
});
